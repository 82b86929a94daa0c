// Validates custom resources (the kinds kubernetes-validate has no schema for) against the CRD
// schemas bundled by the npm @kubernetes-models packages: Gateway API, Traefik, the Prometheus
// operator and cert-manager. Offline once `npm ci` ran in tools/lint.
// usage: node tools/lint/crd-validate.mjs <objects.json>...
//   each file: a JSON array of Kubernetes objects (scripts/suites/50-kubernetes converts the
//   rendered YAML). Objects of a built-in API group are skipped (kubernetes-validate checks
//   them); a custom kind with no bundled schema is an error, so nothing goes unvalidated.
// Exit 1 on any invalid or unknown object. The schemas check types, enums, patterns and
// required fields; they do not reject unknown fields, so k8s/tests/contract.py checks the
// fields the deployment relies on (timeouts, filters, rate limits, TLS, rules).
import { readFile } from "node:fs/promises";
import * as gatewayV1 from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1";
import * as traefik from "@kubernetes-models/traefik/traefik.io/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import * as certManager from "@kubernetes-models/cert-manager/cert-manager.io/v1";

const MODELS = {
  "gateway.networking.k8s.io/v1": gatewayV1,
  "traefik.io/v1alpha1": traefik,
  "monitoring.coreos.com/v1": monitoring,
  "cert-manager.io/v1": certManager,
};
const BUILTIN = /^(v1|apps\/v1|batch\/v1|autoscaling\/v2|policy\/v1|networking\.k8s\.io\/v1|rbac\.authorization\.k8s\.io\/v1)$/;

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: crd-validate.mjs <objects.json>...");
  process.exit(2);
}
let problems = 0;
for (const file of files) {
  const objects = JSON.parse(await readFile(file, "utf8"));
  const counts = {};
  for (const obj of objects) {
    const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    if (BUILTIN.test(obj.apiVersion)) continue;
    const Model = MODELS[obj.apiVersion]?.[obj.kind];
    if (!Model) {
      console.error(`${where}: no bundled schema for ${obj.apiVersion} ${obj.kind}`);
      problems++;
      continue;
    }
    try {
      new Model(obj).validate();
      counts[obj.kind] = (counts[obj.kind] || 0) + 1;
    } catch (e) {
      console.error(`${where}: ${e.message}`);
      problems++;
    }
  }
  const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ") || "no custom resource";
  console.log(`crd-validate: ${file}: ${summary} valid`);
}
process.exit(problems === 0 ? 0 : 1);
