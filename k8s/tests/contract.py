#!/usr/bin/env python3
"""Manifest contract: the rendered Kubernetes manifests must match what the binaries do.

Facts about the binaries are read from the binaries themselves, never written down here:
  - `<bin> env` prints every variable the binary reads (one name per line);
  - `<bin> env --markdown` marks the ones required in production;
  - the binary is started on a free port and its probe paths are requested (--live).

usage:
  contract.py --bin-dir target/debug --overlay NAME=rendered.yaml [...] [--live] [--self-test]

Checks (each failure is one line naming the object):
  env      every env var a container sets is read by its binary; no envFrom; no duplicates;
           production sets every required_in_production variable, from a non-optional
           secret key, a non-empty ConfigMap value or a literal; every ConfigMap key and
           secret key referenced exists (secret keys: k8s/base/secret.example.yaml).
  ports    PORT equals the container port `http`; Services target a declared port;
           prometheus.io/port and /path match; in-cluster URLs point at real Services.
  probes   startup, readiness and liveness probes exist, are HTTP on port `http` and use
           /healthz or /readyz (readiness /readyz); the binary serves them (--live).
  shutdown terminationGracePeriodSeconds > preStop sleep + CHATONS_SHUTDOWN_DRAIN_SECONDS.
  edge     (edge.py) Gateway API (or the legacy Ingresses): public paths reach the right
           Service, internal paths (/v1/internal/*, /v1/realtime/events, /metrics) reach no
           application on any host, the public URLs handed to clients are routed, the
           websocket route has no short timeout, every forwarding rule is rate limited
           (Traefik Middlewares), plain HTTP only redirects, every TLS host is in the
           Certificate and ACME is solved through the Gateway (production).
  budget   (safety.py) Postgres connections at the HPA maxima < max_connections.
  layers   (safety.py) no Namespace or PVC in an overlay (k8s/persistent holds them), PVC
           retention on StatefulSets, the prune label on every app object.
  profile  production containers run with CHATONS_PROFILE=production, local ones without.
  network  the NetworkPolicies allow each flow of the call graph and refuse the others.
  pss      every pod meets Pod Security Standard "restricted" plus read-only root FS,
           resource requests and limits.
"""
from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import yaml

import edge
import observability
import safety

BINARIES = ("cloud-api", "cloud-realtime", "runtime-headless")
DEFAULT_PORTS = {"cloud-api": 4000, "cloud-realtime": 4001, "runtime-headless": 4002}
PROBE_PATHS = {"/healthz", "/readyz"}
SECRET_NAME = "chatons-cloud-secrets"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- facts from the binaries

class Binary:
    def __init__(self, name: str, path: str):
        self.name = name
        self.path = path
        out = subprocess.run([path, "env"], capture_output=True, text=True, check=True).stdout
        self.reads = {l.strip() for l in out.splitlines() if l.strip()}
        md = subprocess.run([path, "env", "--markdown"], capture_output=True, text=True,
                            check=True).stdout
        self.required = set()
        self.defaults = {}
        for line in md.splitlines():
            m = re.match(r"\|\s*`([A-Z0-9_]+)`\s*\|\s*(?:`([^`]*)`|—)\s*\|", line)
            if m and "**Required in production.**" in line:
                self.required.add(m.group(1))
            if m:
                self.defaults[m.group(1)] = m.group(2) or ""
        if not self.reads:
            raise SystemExit(f"{path} env printed no variable")
        if not self.required <= self.reads:
            raise SystemExit(f"{path}: required variables not in `env`: {self.required - self.reads}")


def load_binaries(bin_dir: str) -> dict[str, Binary]:
    bins = {b: Binary(b, os.path.join(bin_dir, b)) for b in BINARIES}
    if not any(b.required for b in bins.values()):
        # The marker text changed: without it the "required in production" rule would pass blindly.
        raise SystemExit("no binary marks a variable 'Required in production' in `env --markdown`")
    return bins


SECRET_EXAMPLES = {
    SECRET_NAME: "k8s/base/secret.example.yaml",
    "chatons-backup-offsite": "k8s/components/offsite-backup/secret.example.yaml",
}


def documented_secrets() -> dict[str, set[str]]:
    out = {}
    for name, rel in SECRET_EXAMPLES.items():
        with open(os.path.join(ROOT, rel)) as f:
            out[name] = set(yaml.safe_load(f)["stringData"])
    return out


def secret_keys() -> set[str]:
    return documented_secrets()[SECRET_NAME]


# ---------------------------------------------------------------- manifest helpers

def docs_of(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def find(docs, kind, name):
    for d in docs:
        if d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    return None


def pod_spec(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return d["spec"]["template"]["spec"]
    return None


def pod_labels(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return d["spec"]["template"]["metadata"].get("labels", {})


def binary_of(container) -> str | None:
    image = container.get("image", "")
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    last = repo.rsplit("/", 1)[-1]
    return last if last in BINARIES else None


def configmap_data(docs) -> dict[str, str]:
    cms = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("chatons-cloud-config")]
    return {d["metadata"]["name"]: (d.get("data") or {}) for d in cms}


def env_value(container, name, cms):
    """The literal value of an env var when it can be known from the manifests, else None."""
    for e in container.get("env", []):
        if e["name"] != name:
            continue
        if "value" in e:
            return e["value"]
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            return cms.get(ref["name"], {}).get(ref["key"])
    return None


# ---------------------------------------------------------------- checks

def check_workloads(docs, overlay, bins, errors):
    production = overlay.startswith("production")
    cms = configmap_data(docs)
    skeys = documented_secrets()
    services = by_kind(docs, "Service")
    seen_bins = set()
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        where = f"[{overlay}] {d['kind']}/{d['metadata']['name']}"
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cw = f"{where} container {c['name']}"
            if c.get("envFrom"):
                errors.append(f"{cw}: uses envFrom (give each variable explicitly)")
            names = [e["name"] for e in c.get("env", [])]
            for n in sorted({n for n in names if names.count(n) > 1}):
                errors.append(f"{cw}: sets {n} twice")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if d["kind"] == "StatefulSet" and r["name"].startswith("chatons-cloud-config"):
                        errors.append(f"{cw}: reads the application ConfigMap (every config change "
                                      f"would restart the {d['metadata']['name']} StatefulSet)")
                    if r["name"] not in cms:
                        errors.append(f"{cw}: {e['name']} refers to missing ConfigMap {r['name']}")
                    elif r["key"] not in cms[r["name"]]:
                        errors.append(f"{cw}: {e['name']} refers to missing ConfigMap key {r['key']}")
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["key"] not in skeys.get(r["name"], set()):
                        errors.append(f"{cw}: {e['name']} refers to undocumented secret key "
                                      f"{r['name']}/{r['key']} (document it in secret.example.yaml)")
            b = binary_of(c)
            if b is None:
                if c in spec.get("initContainers", []) and c["name"] != "db-setup" and d["kind"] == "Deployment":
                    errors.append(f"{cw}: unexpected init container (expected db-setup, then `cloud-api migrate`)")
                if c["name"] == "db-setup" and not any(
                        (v.get("configMap") or {}).get("name", "").startswith("chatons-db-setup")
                        for v in spec.get("volumes", [])):
                    errors.append(f"{cw}: db-setup does not mount the chatons-db-setup script")
                continue
            binary = bins[b]
            for n in names:
                if n not in binary.reads:
                    errors.append(f"{cw}: sets {n}, which {b} does not read")
            is_init = c in spec.get("initContainers", [])
            args = c.get("args") or c.get("command") or []
            if is_init:
                if args != ["migrate"] or b != "cloud-api":
                    errors.append(f"{cw}: the only init container expected is `cloud-api migrate`")
                if "DATABASE_URL" not in names:
                    errors.append(f"{cw}: migrate needs DATABASE_URL")
                continue
            if args not in ([], ["serve"]):
                errors.append(f"{cw}: unexpected args {args}")
            seen_bins.add(b)
            profile = env_value(c, "CHATONS_PROFILE", cms)
            if production and profile != "production":
                errors.append(f"{cw}: CHATONS_PROFILE is {profile!r}, production needs 'production' (fail closed)")
            if not production and profile == "production":
                errors.append(f"{cw}: CHATONS_PROFILE=production outside production")
            if production:
                for req in sorted(binary.required):
                    entry = next((e for e in c.get("env", []) if e["name"] == req), None)
                    if entry is None:
                        errors.append(f"{cw}: misses {req}, required in production by {b}")
                        continue
                    ref = entry.get("valueFrom", {})
                    if "secretKeyRef" in ref and ref["secretKeyRef"].get("optional"):
                        errors.append(f"{cw}: {req} is required in production but its secret key is optional")
                    elif "configMapKeyRef" in ref or "value" in entry:
                        if not (env_value(c, req, cms) or "").strip():
                            errors.append(f"{cw}: {req} is required in production but empty")
            # Ports.
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            if "http" not in ports:
                errors.append(f"{cw}: no container port named http")
                continue
            port_value = env_value(c, "PORT", cms)
            listen = int(port_value) if port_value else DEFAULT_PORTS[b]
            if ports["http"] != listen:
                errors.append(f"{cw}: container port http={ports['http']} but {b} listens on {listen}")
            ann = (d["spec"]["template"]["metadata"].get("annotations") or {})
            if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(listen) \
                    or ann.get("prometheus.io/path") != "/metrics":
                errors.append(f"{cw}: prometheus.io annotations must point at {listen}/metrics")
            # Probes.
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                if not probe or "httpGet" not in probe:
                    errors.append(f"{cw}: missing HTTP {kind}")
                    continue
                hg = probe["httpGet"]
                if hg.get("path") not in PROBE_PATHS:
                    errors.append(f"{cw}: {kind} path {hg.get('path')} is not served by {b} "
                                  f"(serves {sorted(PROBE_PATHS)})")
                if hg.get("port") not in ("http", listen):
                    errors.append(f"{cw}: {kind} port {hg.get('port')} is not the listening port")
            if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
                errors.append(f"{cw}: readiness must use /readyz (it turns 503 on shutdown)")
            if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
                errors.append(f"{cw}: liveness must use /healthz (readiness failures must not restart)")
            # Shutdown budget.
            drain_raw = env_value(c, "CHATONS_SHUTDOWN_DRAIN_SECONDS", cms)
            drain = int(drain_raw) if drain_raw else 10
            sleep = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace <= drain + sleep:
                errors.append(f"{cw}: terminationGracePeriodSeconds {grace} <= preStop {sleep} s + drain {drain} s")
            # Service.
            svc = next((s for s in services if s["spec"].get("selector") and all(
                pod_labels(d).get(k) == v for k, v in s["spec"]["selector"].items())), None)
            if svc is None:
                errors.append(f"{where}: no Service selects it")
            else:
                for sp in svc["spec"]["ports"]:
                    tp = sp.get("targetPort", sp["port"])
                    if tp not in ports and tp not in ports.values():
                        errors.append(f"Service/{svc['metadata']['name']}: targetPort {tp} is not a port of {b}")
    for b in BINARIES:
        if b not in seen_bins:
            errors.append(f"[{overlay}] no Deployment runs {b}")
    # In-cluster URLs must name a Service and one of its ports.
    for cm in cms.values():
        for key in ("CHATONS_CLOUD_API_URL", "CHATONS_REALTIME_PUBLISH_URL"):
            if key not in cm:
                continue
            u = urlparse(cm[key])
            svc = find(docs, "Service", (u.hostname or "").split(".")[0])
            if svc is None or (u.port or 80) not in [p["port"] for p in svc["spec"]["ports"]]:
                errors.append(f"[{overlay}] ConfigMap {key}={cm[key]} names no Service port")
        pu = cm.get("CHATONS_REALTIME_PUBLISH_URL")
        if pu and urlparse(pu).path != "/v1/realtime/events":
            errors.append(f"[{overlay}] CHATONS_REALTIME_PUBLISH_URL must end in /v1/realtime/events")


# NetworkPolicy evaluation (enough of the semantics for our policies: pod/namespace
# selectors with matchLabels/matchExpressions In, ipBlock with except, TCP/UDP ports).

def sel_match(sel, labels):
    if sel is None:
        return True
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for ex in sel.get("matchExpressions") or []:
        val = labels.get(ex["key"])
        op = ex["operator"]
        if op == "In" and val not in ex["values"]:
            return False
        if op == "NotIn" and val in ex["values"]:
            return False
        if op == "Exists" and ex["key"] not in labels:
            return False
        if op == "DoesNotExist" and ex["key"] in labels:
            return False
    return True


class Endpoint:
    def __init__(self, ns=None, labels=None, ip=None):
        self.ns, self.labels, self.ip = ns, labels or {}, ip


def peer_match(peer, ep, policy_ns):
    if "ipBlock" in peer:
        if ep.ip is None:
            return False
        ip = ipaddress.ip_address(ep.ip)
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        if ip.version != net.version or ip not in net:
            return False
        return not any(ip.version == ipaddress.ip_network(e).version and ip in ipaddress.ip_network(e)
                       for e in peer["ipBlock"].get("except", []))
    if ep.ns is None:
        return False
    if "namespaceSelector" in peer:
        if not sel_match(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ep.ns}):
            return False
    elif ep.ns != policy_ns:
        return False
    return sel_match(peer.get("podSelector"), ep.labels)


def port_match(ports, port, proto):
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == proto and p.get("port") in (port, None) for p in ports)


def allowed(docs, src: Endpoint, dst: Endpoint, port: int, proto="TCP"):
    pols = by_kind(docs, "NetworkPolicy")
    def side(ep, direction, other):
        if ep.ns != "chatons-cloud":
            return True  # outside our namespace: not ours to police
        selecting = [p for p in pols if direction in p["spec"].get("policyTypes", ["Ingress"])
                     and sel_match(p["spec"].get("podSelector"), ep.labels)]
        if not selecting:
            return True
        key, peer_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for p in selecting:
            for rule in p["spec"].get(key) or []:
                peers = rule.get(peer_key)
                if port_match(rule.get("ports"), port, proto) and (
                        not peers or any(peer_match(pe, other, p["metadata"].get("namespace")) for pe in peers)):
                    return True
        return False
    return side(src, "Egress", dst) and side(dst, "Ingress", src)


def check_network(docs, overlay, errors):
    if not by_kind(docs, "NetworkPolicy"):
        errors.append(f"[{overlay}] no NetworkPolicy")
        return
    ns = "chatons-cloud"
    app = lambda n: Endpoint(ns, {"app.kubernetes.io/name": n})
    traefik = Endpoint("traefik", {"app.kubernetes.io/name": "traefik"})
    nginx = Endpoint("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    # The edge's data plane: Traefik for the Gateway, ingress-nginx for the legacy Ingresses;
    # the other one must be refused like any other namespace.
    kind = edge.edge_kind(docs)
    front, not_front = (nginx, traefik) if kind == "ingress" else (traefik, nginx)
    prom = Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"})
    other = Endpoint("some-other-namespace", {"app": "x"})
    traefik_other = Endpoint("traefik", {"app.kubernetes.io/name": "not-traefik"})
    dns = Endpoint("kube-system", {"k8s-app": "kube-dns"})
    solver = Endpoint(ns, {"acme.cert-manager.io/http01-solver": "true"})
    llm = Endpoint(ip="104.18.6.192")
    smtp = Endpoint(ip="198.51.100.7")
    private = Endpoint(ip="10.0.0.12")
    metadata = Endpoint(ip="169.254.169.254")
    # Postgres and Redis: the bundled StatefulSets, or (managed-datastores) the addresses the
    # component opens egress to.
    managed = find(docs, "StatefulSet", "postgres") is None
    pg = Endpoint(ip=MANAGED_PG_IP) if managed else app("postgres")
    redis = Endpoint(ip=MANAGED_REDIS_IP) if find(docs, "StatefulSet", "redis") is None else app("redis")
    must = [
        (front, app("cloud-api"), 4000), (front, app("cloud-realtime"), 4001),
        (front, app("runtime-headless"), 4002), (front, solver, 8089),
        (prom, app("cloud-api"), 4000), (prom, app("cloud-realtime"), 4001),
        (prom, app("runtime-headless"), 4002),
        (app("cloud-realtime"), app("cloud-api"), 4000), (app("runtime-headless"), app("cloud-api"), 4000),
        (app("runtime-headless"), app("cloud-realtime"), 4001),
        (app("cloud-api"), pg, 5432), (app("runtime-headless"), pg, 5432),
        (app("postgres-backup"), pg, 5432), (app("cloud-realtime"), redis, 6379),
        (app("runtime-headless"), llm, 443), (app("cloud-api"), smtp, 587), (app("cloud-api"), smtp, 465),
    ]
    for c in ("cloud-api", "cloud-realtime", "runtime-headless", "postgres-backup"):
        must.append((app(c), dns, 53))
    if find(docs, "Deployment", "postgres-exporter"):
        must += [(app("postgres-exporter"), pg, 5432), (prom, app("postgres-exporter"), 9187),
                 (app("postgres-exporter"), dns, 53)]
    if find(docs, "Deployment", "redis-exporter"):
        must += [(app("redis-exporter"), redis, 6379), (prom, app("redis-exporter"), 9121),
                 (app("redis-exporter"), dns, 53)]
    if any(c["name"] == "offsite-copy" for d in by_kind(docs, "CronJob") for c in pod_spec(d)["containers"]):
        must.append((app("postgres-backup"), Endpoint(ip="52.216.8.1"), 443))
    must_not = [
        (other, app("cloud-api"), 4000), (other, app("cloud-realtime"), 4001),
        (not_front, app("cloud-api"), 4000), (not_front, app("runtime-headless"), 4002),
        (app("runtime-headless"), redis, 6379), (app("cloud-realtime"), pg, 5432),
        (app("cloud-api"), app("cloud-realtime"), 4001), (app("cloud-api"), redis, 6379),
        (app("cloud-api"), llm, 443), (app("cloud-realtime"), llm, 443),
        (app("runtime-headless"), private, 443), (app("runtime-headless"), metadata, 443),
        (app("runtime-headless"), llm, 80), (app("postgres"), llm, 443), (app("redis"), llm, 443),
        (other, app("postgres"), 5432), (app("cloud-api"), app("runtime-headless"), 4002),
        (other, solver, 8089), (app("postgres-backup"), metadata, 443),
        (app("postgres-exporter"), llm, 443), (app("redis-exporter"), pg, 5432),
        (other, app("postgres-exporter"), 9187),
    ]
    if kind == "gateway":
        must_not.append((traefik_other, app("cloud-api"), 4000))
    # In-cluster datastores must refuse the edge (a managed one is outside these policies).
    if not pg.ip:
        must_not.append((front, pg, 5432))
    if not redis.ip:
        must_not.append((front, redis, 6379))
    def name(e):
        if "acme.cert-manager.io/http01-solver" in e.labels:
            return "acme-solver"
        return e.labels.get("app.kubernetes.io/name") or e.labels.get("k8s-app") or \
            e.labels.get("app") or e.ip
    for s, d, p in must:
        proto_ok = allowed(docs, s, d, p, "UDP" if p == 53 else "TCP")
        if not proto_ok:
            errors.append(f"[{overlay}] NetworkPolicies block needed traffic {s.ns or ''}/{name(s)} -> {name(d)}:{p}")
    for s, d, p in must_not:
        if allowed(docs, s, d, p):
            errors.append(f"[{overlay}] NetworkPolicies allow unneeded traffic {s.ns or ''}/{name(s)} -> {name(d)}:{p}")


# Addresses the managed-datastores component's example opens egress to (documentation ranges).
MANAGED_PG_IP = "192.0.2.10"
MANAGED_REDIS_IP = "192.0.2.20"

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def check_pss(docs, overlay, errors, persistent=None):
    if persistent is not None:
        ns = find(persistent, "Namespace", "chatons-cloud")
        if ns is None or ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            errors.append("k8s/persistent: namespace chatons-cloud does not enforce PSS restricted")
    for d in docs:
        spec = pod_spec(d)
        if spec is None:
            continue
        where = f"[{overlay}] {d['kind']}/{d['metadata']['name']}"
        psc = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{where}: automountServiceAccountToken is not false")
        for k in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(k):
                errors.append(f"{where}: {k}")
        for v in spec.get("volumes", []):
            kinds = set(v) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                errors.append(f"{where}: volume {v['name']} of type {kinds} not allowed by PSS restricted")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            sc = c.get("securityContext") or {}
            cw = f"{where} container {c['name']}"
            nonroot = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if nonroot is not True or uid in (None, 0):
                errors.append(f"{cw}: must run as a non-root uid")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                errors.append(f"{cw}: seccompProfile must be RuntimeDefault")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{cw}: allowPrivilegeEscalation must be false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                errors.append(f"{cw}: capabilities must drop ALL")
            if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
                errors.append(f"{cw}: adds capabilities")
            if sc.get("privileged"):
                errors.append(f"{cw}: privileged")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{cw}: root filesystem must be read-only")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        errors.append(f"{cw}: no {r} {part[:-1]}")
            image = c.get("image", "")
            if image.endswith(":latest") or ":" not in image.split("/")[-1]:
                errors.append(f"{cw}: image {image} is not pinned")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        if "minAvailable" in pdb["spec"]:
            errors.append(f"[{overlay}] PDB/{pdb['metadata']['name']} uses minAvailable (blocks drains at one replica)")
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        if hpa["spec"].get("minReplicas", 1) < 1:
            errors.append(f"[{overlay}] HPA/{hpa['metadata']['name']} minReplicas < 1")


PERSISTENT: list[dict] | None = None
# Series the binaries export (from their /metrics, filled by --live).
EXPORTED: set[str] | None = None


def run_checks(overlays: dict[str, list[dict]], bins, verbose=False) -> list[str]:
    errors: list[str] = []
    for name, docs in overlays.items():
        cms = next(iter(configmap_data(docs).values()), {})
        check_workloads(docs, name, bins, errors)
        edge.check_edge(docs, name, cms, errors)
        check_network(docs, name, errors)
        check_pss(docs, name, errors, PERSISTENT)
        safety.check_budget(docs, name, bins, env_value, binary_of, configmap_data(docs), errors, verbose)
        safety.check_layers(docs, name, errors, PERSISTENT)
        with open(os.path.join(ROOT, "docs/OPERATIONS.md")) as f:
            n = observability.check(docs, name, EXPORTED, f.read(), errors)
        if n and verbose:
            print(f"  [{name}] {n} alert/dashboard expressions checked against the exported metrics")
    return errors


# ---------------------------------------------------------------- live probes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def check_generated_secret(data, errors):
    """k8s/generate-secret.sh must produce every documented key, consistently."""
    documented = secret_keys() - {"SMTP_USER", "SMTP_PASS"}
    missing = documented - set(data)
    if missing:
        errors.append(f"generate-secret.sh: misses {sorted(missing)}")
        return
    admin = urlparse(data["DATABASE_ADMIN_URL"])
    if admin.scheme != "postgres" or admin.password != data["POSTGRES_PASSWORD"] \
            or admin.hostname != "postgres" or admin.username != "chatons":
        errors.append("generate-secret.sh: DATABASE_ADMIN_URL is not chatons:<POSTGRES_PASSWORD>@postgres")
    db = urlparse(data["DATABASE_URL"])
    if db.scheme != "postgres" or db.hostname != "postgres" or db.username in (None, "chatons", "postgres") \
            or not db.password or db.password == data["POSTGRES_PASSWORD"] or len(db.password) < 16:
        errors.append("generate-secret.sh: DATABASE_URL must name its own application role and password on Service postgres")
    rd = urlparse(data["REDIS_URL"])
    if rd.scheme != "redis" or rd.password != data["REDIS_PASSWORD"] or rd.hostname != "redis":
        errors.append("generate-secret.sh: REDIS_URL does not match REDIS_PASSWORD / Service redis")
    if len(data["CHATONS_INTERNAL_SERVICE_TOKEN"]) < 32:
        errors.append("generate-secret.sh: service token shorter than 32 characters")
    if data["CHATONS_RUNTIME_SEALING_KEY"] == data["CHATONS_SECRETS_ENCRYPTION_KEY"]:
        errors.append("generate-secret.sh: the sealing key must differ from the secrets-encryption key")


def live_check(bins, overlays, errors, secret):
    """Starts each binary (in-memory defaults) and requests the probe paths the manifests use."""
    global EXPORTED
    paths_used = {b: set() for b in BINARIES}
    for docs in overlays.values():
        for d in by_kind(docs, "Deployment"):
            for c in pod_spec(d).get("containers", []):
                b = binary_of(c)
                if b:
                    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                        p = (c.get(kind) or {}).get("httpGet", {}).get("path")
                        if p:
                            paths_used[b].add(p)
    for b, binary in bins.items():
        port = free_port()
        data = tempfile.mkdtemp(prefix=f"contract-{b}-")
        env = {k: v for k, v in os.environ.items() if k not in binary.reads}
        env.update({"PORT": str(port), "CHATONS_SHUTDOWN_DRAIN_SECONDS": "2",
                    "CHATONS_DATA_DIR": data, "CHATONS_RUNTIME_ROOT_DIR": data,
                    "CHATONS_INTERNAL_SERVICE_TOKEN": "contract-test-token-0123456789abcdef"})
        # Key material from k8s/generate-secret.sh must be accepted by the binary that reads it.
        for key in ("CHATONS_INTERNAL_SERVICE_TOKEN", "JWT_SIGNING_KEY", "CHATONS_SECRETS_ENCRYPTION_KEY",
                    "CHATONS_RUNTIME_SEALING_KEY"):
            if key in secret and key in binary.reads:
                env[key] = secret[key]
        log = open(os.path.join(data, "log"), "w+")
        proc = subprocess.Popen([binary.path, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 30
            while True:
                try:
                    status = http_status(base + "/healthz")
                    break
                except (urllib.error.URLError, ConnectionError, OSError):
                    if proc.poll() is not None or time.time() > deadline:
                        log.seek(0)
                        errors.append(f"live {b}: did not start: {log.read()[-2000:]}")
                        status = None
                        break
                    time.sleep(0.2)
            if status is None:
                continue
            expected = {"/healthz": {200}, "/readyz": {204, 503}, "/metrics": {200}}
            with urllib.request.urlopen(base + "/metrics", timeout=3) as r:
                EXPORTED = (EXPORTED or set()) | observability.exported_series(r.read().decode())
            for path in sorted(paths_used[b] | set(expected)):
                got = http_status(base + path)
                ok = expected.get(path, {200, 204})
                if got not in ok:
                    errors.append(f"live {b}: GET {path} -> {got}, expected one of {sorted(ok)}")
                else:
                    print(f"  live {b} :{port} GET {path} -> {got}")
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=15)
                if code != 0:
                    errors.append(f"live {b}: exit code {code} after SIGTERM (expected 0)")
                else:
                    print(f"  live {b}: SIGTERM -> exit 0")
            except subprocess.TimeoutExpired:
                errors.append(f"live {b}: still running 15 s after SIGTERM (drain 2 s)")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- self-test

def mutations():
    """(description, mutation of the production overlay, expected error text): each must be caught."""
    def dep(docs, name):
        return find(docs, "Deployment", name)
    def main_c(docs, name):
        return pod_spec(dep(docs, name))["containers"][0]
    def add_env(docs):
        main_c(docs, "cloud-realtime")["env"].append({"name": "CHATONS_NOT_READ_BY_ANYONE", "value": "1"})
    def drop_required(docs):
        c = main_c(docs, "cloud-api")
        c["env"] = [e for e in c["env"] if e["name"] != "JWT_SIGNING_KEY"]
    def optional_required(docs):
        for e in main_c(docs, "runtime-headless")["env"]:
            if e["name"] == "DATABASE_URL":
                e["valueFrom"]["secretKeyRef"]["optional"] = True
    def port(docs):
        main_c(docs, "runtime-headless")["ports"][0]["containerPort"] = 4999
    def port_env(docs):
        for e in main_c(docs, "cloud-api")["env"]:
            if e["name"] == "PORT":
                e["value"] = "8080"
    def probe(docs):
        main_c(docs, "cloud-realtime")["readinessProbe"]["httpGet"]["path"] = "/ready"
    def no_probe(docs):
        del main_c(docs, "cloud-api")["livenessProbe"]
    def grace(docs):
        pod_spec(dep(docs, "cloud-realtime"))["terminationGracePeriodSeconds"] = 20
    def env_from(docs):
        main_c(docs, "runtime-headless")["envFrom"] = [{"secretRef": {"name": SECRET_NAME}}]
    def route(docs, name):
        return find(docs, "HTTPRoute", name)
    def route_internal(docs):
        route(docs, "cloud-api")["spec"]["rules"].pop(1)
    def route_events(docs):
        m = route(docs, "cloud-realtime")["spec"]["rules"][1]["matches"][0]["path"]
        m["type"], m["value"] = "PathPrefix", "/"
    def metrics_prefix(docs):
        route(docs, "runtime-headless")["spec"]["rules"][0]["matches"].append(
            {"path": {"type": "Exact", "value": "/metrics"}})
    def no_runtime_route(docs):
        docs.remove(route(docs, "runtime-headless"))
    def ws_timeout(docs):
        route(docs, "cloud-realtime")["spec"]["rules"][0]["timeouts"] = {"request": "60s"}
    def no_rate_limit(docs):
        route(docs, "runtime-headless")["spec"]["rules"][0]["filters"].pop(0)
    def plain_http(docs):
        route(docs, "cloud-api")["spec"]["parentRefs"][0]["sectionName"] = "http"
    def acme(docs):
        find(docs, "ClusterIssuer", "letsencrypt-production")["spec"]["acme"]["solvers"][0]["http01"] = \
            {"ingress": {"ingressClassName": "nginx"}}
    def budget(docs):
        find(docs, "HorizontalPodAutoscaler", "runtime-headless")["spec"]["maxReplicas"] = 20
    def namespace(docs):
        docs.append(copy.deepcopy(PERSISTENT[0]))
    def retention(docs):
        del find(docs, "StatefulSet", "postgres")["spec"]["persistentVolumeClaimRetentionPolicy"]
    def prune_label(docs):
        del find(docs, "Service", "redis")["metadata"]["labels"]["chatons.ai/layer"]
    def dev_profile(docs):
        cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("chatons-cloud-config"))
        cm["data"]["CHATONS_PROFILE"] = "development"
    def no_setup(docs):
        spec = pod_spec(dep(docs, "cloud-api"))
        spec["initContainers"] = [c for c in spec["initContainers"] if c["name"] != "db-setup"] + \
            [{"name": "shell", "image": "busybox:1.36", "securityContext": spec["initContainers"][0]["securityContext"]}]
    def allow_all(docs):
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": {"name": "allow-all", "namespace": "chatons-cloud"},
                     "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                              "ingress": [{}], "egress": [{}]}})
    def block_edge(docs):
        pol = find(docs, "NetworkPolicy", "cloud-api")
        pol["spec"]["ingress"][0]["from"] = [p for p in pol["spec"]["ingress"][0]["from"]
                                             if "traefik" not in str(p)]
    def root(docs):
        pod_spec(find(docs, "StatefulSet", "redis"))["securityContext"]["runAsNonRoot"] = False
        pod_spec(find(docs, "StatefulSet", "redis"))["containers"][0]["securityContext"]["runAsNonRoot"] = False
    def rw_root(docs):
        pod_spec(dep(docs, "cloud-api"))["initContainers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    def pdb(docs):
        p = find(docs, "PodDisruptionBudget", "cloud-api")
        del p["spec"]["maxUnavailable"]
        p["spec"]["minAvailable"] = 1
    def secret_key(docs):
        for e in main_c(docs, "cloud-api")["env"]:
            if e["name"] == "DATABASE_URL":
                e["valueFrom"]["secretKeyRef"]["key"] = "DB_URL"
    def runtime_url(docs):
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        cm["data"]["CHATONS_RUNTIME_PUBLIC_URL"] = "https://runtime.chatons.ai"
    def stateful_config(docs):
        c = pod_spec(find(docs, "StatefulSet", "postgres"))["containers"][0]
        cm = next(d for d in docs if d["kind"] == "ConfigMap")["metadata"]["name"]
        c["env"].append({"name": "X", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "RUST_LOG"}}})
    def tls(docs):
        find(docs, "Certificate", "chatons-cloud-tls")["spec"]["dnsNames"].remove("realtime.chatons.ai")
    return [
        ("env var the binary does not read", add_env, "does not read"),
        ("required variable missing", drop_required, "misses JWT_SIGNING_KEY"),
        ("required secret key optional", optional_required, "secret key is optional"),
        ("container port differs from PORT", port, "container port http=4999"),
        ("PORT differs from container port", port_env, "listens on 8080"),
        ("probe path not served", probe, "path /ready is not served"),
        ("probe missing", no_probe, "missing HTTP livenessProbe"),
        ("grace period shorter than drain", grace, "terminationGracePeriodSeconds 20"),
        ("envFrom of the whole secret", env_from, "uses envFrom"),
        ("/v1/internal routed to cloud-api", route_internal, "/v1/internal/runtime/access reaches cloud-api"),
        ("/v1/realtime/events routed", route_events, "/v1/realtime/events reaches cloud-realtime"),
        ("/metrics of runtime routed", metrics_prefix, "/metrics reaches runtime-headless"),
        ("no route to runtime-headless", no_runtime_route, "expected runtime-headless"),
        ("websocket route with a short timeout", ws_timeout, "websocket route needs timeouts.request"),
        ("forwarding rule without rate limit", no_rate_limit, "has no rate limit"),
        ("app served on plain HTTP", plain_http, "serves plain HTTP"),
        ("ACME not through the Gateway", acme, "does not solve HTTP-01 through the Gateway"),
        ("connection budget exceeded", budget, "connection budget"),
        ("namespace in the app layer", namespace, "renders Namespace/chatons-cloud"),
        ("StatefulSet deletes its volume", retention, "must retain its volumes"),
        ("object without the prune label", prune_label, "Service/redis lacks the label"),
        ("production without the production profile", dev_profile, "production needs 'production'"),
        ("no application-role setup", no_setup, "unexpected init container"),
        ("allow-all NetworkPolicy", allow_all, "allow unneeded traffic"),
        ("edge blocked", block_edge, "block needed traffic traefik/traefik -> cloud-api"),
        ("root container", root, "non-root uid"),
        ("writable root filesystem", rw_root, "container db-setup: root filesystem"),
        ("minAvailable PDB", pdb, "uses minAvailable"),
        ("undocumented secret key", secret_key, "undocumented secret key"),
        ("runtime public URL not routed", runtime_url, "runtime.chatons.ai/v1/runtime/sessions reaches nothing"),
        ("database restarts on config changes", stateful_config, "would restart the postgres StatefulSet"),
        ("TLS host missing from certificate", tls, "realtime.chatons.ai of HTTPRoute/cloud-realtime is not covered"),
    ]


def self_test(overlays, bins) -> list[str]:
    problems = []
    baseline = run_checks({"production": overlays["production"]}, bins)
    if baseline:
        return ["self-test needs a clean production overlay"]
    for desc, mutate, needle in mutations():
        docs = copy.deepcopy(overlays["production"])
        mutate(docs)
        errs = [e for e in run_checks({"production": docs}, bins) if needle in e]
        if errs:
            print(f"  self-test: {desc}: caught ({errs[0]})")
        else:
            problems.append(f"self-test: mutation '{desc}' was NOT caught (no error containing {needle!r})")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--overlay", action="append", required=True, help="NAME=rendered.yaml")
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--generated-secret", help="output of k8s/generate-secret.sh, checked and used by --live")
    ap.add_argument("--persistent", required=True, help="rendered k8s/persistent")
    args = ap.parse_args()
    global PERSISTENT
    PERSISTENT = docs_of(args.persistent)
    bins = load_binaries(args.bin_dir)
    for b in bins.values():
        print(f"  {b.name}: reads {len(b.reads)} variables, {len(b.required)} required in production "
              f"({', '.join(sorted(b.required))})")
    generated = None
    if args.generated_secret:
        with open(args.generated_secret) as f:
            generated = yaml.safe_load(f)["stringData"]
    overlays = {}
    for spec in args.overlay:
        name, path = spec.split("=", 1)
        overlays[name] = docs_of(path)
    errors = []
    if args.live:
        # First: it learns the metric names the alert rules are checked against.
        live_check(bins, overlays, errors, generated or {})
        if EXPORTED is None:
            errors.append("live: no /metrics could be read, alert rules cannot be checked")
    errors += run_checks(overlays, bins, verbose=True)
    if "production" in overlays:
        for d in by_kind(overlays["production"], "Deployment"):
            c = pod_spec(d)["containers"][0]
            b = binary_of(c)
            if b:
                unset = sorted(bins[b].reads - {e["name"] for e in c.get("env", [])})
                print(f"  {b}: left at the binary's default: {', '.join(unset) or 'nothing'}")
    if generated is not None:
        check_generated_secret(generated, errors)
    if args.self_test:
        if "production" not in overlays:
            errors.append("--self-test needs the production overlay")
        elif not errors:
            errors += self_test(overlays, bins)
    sys.stdout.flush()
    for e in errors:
        print(f"CONTRACT: {e}", file=sys.stderr)
    sys.stdout.flush()
    print(f"manifest contract: {len(errors)} problem(s) in {', '.join(overlays)}", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
