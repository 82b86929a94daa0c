#!/usr/bin/env python3
"""Static checks of the delivery files that actionlint and checkov do not cover.

usage: check_delivery.py <rendered production overlay> [--self-test]

Workflows (.github/workflows)
  ci.yml           runs scripts/test on push and pull_request.
  deploy-cloud.yml triggers only on push to main and workflow_dispatch (never pull_request);
                   builds every workspace binary with docker/Dockerfile, tags :<sha> and
                   :latest on ghcr.io; decodes KUBE_CONFIG and checks connectivity; creates
                   the pull secret BEFORE anything is applied; pins images with
                   `kustomize edit set image` to the SHA; waits for rollouts; dumps
                   diagnostics on failure; REQUIRED_SECRET_KEYS equals the secret keys the
                   production pods cannot start without.
  every `uses:`    pinned to a full version (vX.Y.Z) or a commit SHA.
Dockerfile (docker/Dockerfile) and .dockerignore
  multi-stage; every base image tagged and not :latest; dependency layer cooked before
  the sources are copied; `--locked` builds; final stage non-root USER (uid >= 10000),
  exec-form ENTRYPOINT, no HEALTHCHECK; .dockerignore keeps target/ and .git out and
  every workspace member and migrations/ in.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def workspace():
    cargo = tomllib.loads(read("Cargo.toml"))
    members = cargo["workspace"]["members"]
    bins = []
    for m in members:
        if m.startswith("services/"):
            pkg = tomllib.loads(read(f"{m}/Cargo.toml"))
            names = [b["name"] for b in pkg.get("bin", [])] or [pkg["package"]["name"]]
            bins += names
    return members, sorted(bins)


def triggers(wf):
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {k: None for k in on}
    return on or {}


def all_steps(wf):
    for job_name, job in (wf.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            yield job_name, i, step


USES_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def required_secret_keys(rendered_docs):
    keys = set()
    for d in rendered_docs:
        kind = d.get("kind")
        if kind == "CronJob":
            spec = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind in ("Deployment", "StatefulSet"):
            spec = d["spec"]["template"]["spec"]
        else:
            continue
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref.get("name") == "chatons-cloud-secrets" and not ref.get("optional"):
                    keys.add(ref["key"])
        for v in spec.get("volumes", []):
            s = v.get("secret")
            if s and s.get("secretName") == "chatons-cloud-secrets" and not s.get("optional"):
                keys |= {i["key"] for i in s.get("items", [])}
    return keys


def check_workflows(ci_text, deploy_text, rendered_docs, bins, errors):
    for name, text in (("ci.yml", ci_text), ("deploy-cloud.yml", deploy_text)):
        wf = yaml.safe_load(text)
        for job, i, step in all_steps(wf):
            uses = step.get("uses")
            if uses and not uses.startswith("./") and not USES_PINNED.match(uses):
                errors.append(f"{name}: job {job} step {i}: `uses: {uses}` is not pinned to vX.Y.Z or a commit SHA")
    ci = yaml.safe_load(ci_text)
    t = triggers(ci)
    if "push" not in t or "pull_request" not in t:
        errors.append("ci.yml: must run on push and pull_request")
    if not any("scripts/test" in str(s.get("run", "")) for _, _, s in all_steps(ci)):
        errors.append("ci.yml: no step runs scripts/test")

    wf = yaml.safe_load(deploy_text)
    t = triggers(wf)
    if set(t) - {"push", "workflow_dispatch"}:
        errors.append(f"deploy-cloud.yml: triggers {sorted(map(str, t))}: only push to main and workflow_dispatch allowed")
    push = t.get("push") or {}
    if push.get("branches") != ["main"] or push.get("tags") or push.get("branches-ignore"):
        errors.append("deploy-cloud.yml: push trigger must be limited to branches [main]")
    if "workflow_dispatch" not in t:
        errors.append("deploy-cloud.yml: no workflow_dispatch trigger")
    perms = wf.get("permissions") or {}
    if perms != {"contents": "read"}:
        errors.append("deploy-cloud.yml: top-level permissions must be contents: read only")

    steps = list(all_steps(wf))
    text_of = lambda s: json.dumps(s)
    def first(pred):
        return next(((j, i) for j, i, s in steps if pred(s)), None)
    # Images: every workspace binary, built from docker/Dockerfile, pushed with sha and latest.
    build = next((s for _, _, s in steps if str(s.get("uses", "")).startswith("docker/build-push-action")), None)
    if build is None:
        errors.append("deploy-cloud.yml: no docker/build-push-action step")
    else:
        w = build.get("with") or {}
        if w.get("file") != "docker/Dockerfile" or not os.path.exists(os.path.join(ROOT, w.get("file", "-"))):
            errors.append("deploy-cloud.yml: images must be built from docker/Dockerfile")
        tags = str(w.get("tags", ""))
        if "github.sha" not in tags or ":latest" not in tags or str(w.get("push")).lower() != "true":
            errors.append("deploy-cloud.yml: images must be pushed tagged with the commit SHA and latest")
        if "BIN=" not in str(w.get("build-args", "")):
            errors.append("deploy-cloud.yml: the build does not pass BIN")
    matrix_bins = sorted(
        inc.get("bin") for job in (wf.get("jobs") or {}).values()
        for inc in (((job.get("strategy") or {}).get("matrix") or {}).get("include") or []))
    if matrix_bins != bins:
        errors.append(f"deploy-cloud.yml: builds {matrix_bins}, the workspace has {bins}")
    image_step = first(lambda s: "ghcr.io/" in text_of(s) and "GITHUB_REPOSITORY_OWNER,," in text_of(s))
    if image_step is None:
        errors.append("deploy-cloud.yml: image names must be ghcr.io/<lower-cased owner>/<bin>")
    # Deploy sequence.
    decode = first(lambda s: "KUBE_CONFIG" in text_of(s) and "base64 -d" in text_of(s))
    connect = first(lambda s: "cluster-info" in text_of(s))
    pull = first(lambda s: "ghcr-pull" in text_of(s) and "dockerconfigjson" in text_of(s))
    pin = first(lambda s: "kustomize edit set image" in text_of(s) and "GITHUB_SHA" in text_of(s))
    apply = first(lambda s: re.search(r"kubectl apply\b(?!.*--dry-run)[^\n]*rendered", str(s.get("run", ""))) is not None)
    rollout = first(lambda s: "rollout status" in text_of(s))
    diag = first(lambda s: s.get("if") == "failure()" and "logs" in text_of(s) and "describe" in text_of(s))
    for label, pos in (("decode KUBE_CONFIG", decode), ("check connectivity", connect),
                       ("ensure the image pull secret", pull), ("kustomize edit set image to the SHA", pin),
                       ("apply", apply), ("wait for rollouts", rollout), ("diagnostics on failure", diag)):
        if pos is None:
            errors.append(f"deploy-cloud.yml: no step that does: {label}")
    order = [("decode KUBE_CONFIG", decode), ("check connectivity", connect),
             ("ensure the image pull secret", pull), ("pin images", pin), ("apply", apply),
             ("wait for rollouts", rollout)]
    present = [(l, p) for l, p in order if p is not None]
    for (la, pa), (lb, pb) in zip(present, present[1:]):
        if pa[0] == pb[0] and pa[1] > pb[1]:
            errors.append(f"deploy-cloud.yml: '{la}' must come before '{lb}'")
    # Any kubectl apply of the overlay before the pull secret exists?
    if pull is not None:
        for j, i, s in steps:
            run = str(s.get("run", ""))
            if j == pull[0] and i < pull[1] and re.search(r"kubectl apply[^\n]*(-k|rendered|overlays)", run):
                errors.append("deploy-cloud.yml: the overlay is applied before the image pull secret exists")
    # The pin step must name every binary, under the image names the overlay really uses.
    if pin is not None:
        pin_text = text_of(wf["jobs"][pin[0]]["steps"][pin[1]])
        rendered_images = {c["image"].split("@")[0].rsplit(":", 1)[0]
                           for d in rendered_docs if d.get("kind") == "Deployment"
                           for c in d["spec"]["template"]["spec"].get("containers", [])}
        for b in bins:
            if b not in pin_text:
                errors.append(f"deploy-cloud.yml: the pin step does not set the image of {b}")
            if f"ghcr.io/chatons/{b}" not in rendered_images:
                errors.append(f"deploy-cloud.yml: the production overlay has no image ghcr.io/chatons/{b} to pin")
        if "ghcr.io/chatons/$bin=" not in pin_text:
            errors.append("deploy-cloud.yml: the pin step must rewrite ghcr.io/chatons/<bin>")
    want = required_secret_keys(rendered_docs)
    got = set(str((wf.get("env") or {}).get("REQUIRED_SECRET_KEYS", "")).split())
    if want != got:
        errors.append(f"deploy-cloud.yml: REQUIRED_SECRET_KEYS {sorted(got)} != keys the pods need {sorted(want)}")


def dockerfile_stages(text):
    lines = re.sub(r"\\\n", " ", text).splitlines()
    args, stages = {}, []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        elif instr == "FROM":
            # An ARG without a default leaves the reference empty: marked so it cannot pass.
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1)) or "<unset>", rest.split()[0])
            stages.append({"image": image, "alias": rest.split()[-1] if " AS " in rest.upper() else None,
                           "instrs": []})
        elif stages:
            stages[-1]["instrs"].append((instr, rest))
    return stages


def check_dockerfile(text, dockerignore, members, errors):
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        errors.append("Dockerfile: not a multi-stage build")
        return
    aliases = {s["alias"] for s in stages if s["alias"]}
    for s in stages:
        img = s["image"]
        if img in aliases:
            continue
        name = img.split("@")[0].rsplit("/", 1)[-1]
        if ":" not in name or "<unset>" in img or name.split(":")[1] in ("", "latest"):
            errors.append(f"Dockerfile: base image {img} has no fixed tag")
    final = stages[-1]
    instrs = final["instrs"]
    users = [r for i, r in instrs if i == "USER"]
    if not users:
        errors.append("Dockerfile: the final stage sets no USER")
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0") or (user.isdigit() and int(user) < 10000):
            errors.append(f"Dockerfile: final USER {users[-1]} is root or a low uid")
    if re.search(r"^\s*HEALTHCHECK\b", text, re.M | re.I):
        errors.append("Dockerfile: has a HEALTHCHECK (Kubernetes probes do this)")
    entry = [r for i, r in instrs if i == "ENTRYPOINT"]
    if not entry or not entry[-1].startswith("["):
        errors.append("Dockerfile: final stage needs an exec-form ENTRYPOINT")
    if not any(i == "COPY" and "--from=" in r for i, r in instrs):
        errors.append("Dockerfile: final stage copies nothing from a build stage")
    if any(i == "RUN" for i, _ in instrs) and "distroless" in final["image"]:
        errors.append("Dockerfile: RUN in a distroless stage cannot work")
    if "rust" in final["image"] or "cargo" in " ".join(r for _, r in instrs):
        errors.append("Dockerfile: the final image contains the toolchain")
    builder = next((s for s in stages if any("cargo build" in r for i, r in s["instrs"])), None)
    if builder is None:
        errors.append("Dockerfile: no stage runs cargo build")
    else:
        seq = builder["instrs"]
        cook = next((k for k, (i, r) in enumerate(seq) if "cargo chef cook" in r), None)
        copy_all = next((k for k, (i, r) in enumerate(seq) if i == "COPY" and re.match(r"^\.\s+\.", r)), None)
        if cook is None or copy_all is None or cook > copy_all:
            errors.append("Dockerfile: dependencies are not cooked in a layer before the sources are copied")
        for i, r in seq:
            if "cargo build" in r and "--locked" not in r:
                errors.append("Dockerfile: cargo build without --locked")
            if "cargo chef cook" in r and "--locked" not in r:
                errors.append("Dockerfile: cargo chef cook without --locked")
        arg_bin = next((k for k, (i, r) in enumerate(seq) if i == "ARG" and r.startswith("BIN")), None)
        if arg_bin is not None and cook is not None and arg_bin < cook:
            errors.append("Dockerfile: ARG BIN before the dependency layer defeats its cache")
    patterns = [l.strip().rstrip("/") for l in dockerignore.splitlines() if l.strip() and not l.startswith("#")]
    def ignored(path):
        return any(p == path or path.startswith(p + "/") for p in patterns if not p.startswith("!"))
    for must in ("target", ".git"):
        if not any(p in (must, f"**/{must}") for p in patterns):
            errors.append(f".dockerignore: {must} is not excluded")
    for m in list(members) + ["migrations", "Cargo.toml", "Cargo.lock"]:
        if ignored(m):
            errors.append(f".dockerignore: excludes {m}, which the build needs")


def run_all(ci, deploy, dockerfile, dockerignore, rendered_docs):
    members, bins = workspace()
    errors = []
    check_workflows(ci, deploy, rendered_docs, bins, errors)
    check_dockerfile(dockerfile, dockerignore, members, errors)
    return errors


def self_test(files, rendered_docs):
    ci, deploy, dockerfile, dockerignore = files
    pull_block = deploy[deploy.index("      # Before anything that creates pods"):deploy.index("      - uses: docker/login-action@v3.4.0\n        with:\n          registry: ghcr.io\n          username: ${{ github.actor }}\n          password: ${{ secrets.GITHUB_TOKEN }}\n\n      - name: Pin")]
    moved = deploy.replace(pull_block, "").replace("      - name: Wait for the rollouts", pull_block + "      - name: Wait for the rollouts")
    cases = [
        ("deploy on pull_request", (ci, deploy.replace("  workflow_dispatch:\n", "  workflow_dispatch:\n  pull_request:\n", 1), dockerfile, dockerignore), "only push to main"),
        ("deploy on every branch", (ci, deploy.replace("    branches: [main]\n", "    branches: ['**']\n", 1), dockerfile, dockerignore), "limited to branches [main]"),
        ("action on a branch", (ci, deploy.replace("actions/checkout@v4.2.2", "actions/checkout@main", 1), dockerfile, dockerignore), "is not pinned"),
        ("action on a major tag", (ci.replace("actions/setup-node@v4.4.0", "actions/setup-node@v4"), deploy, dockerfile, dockerignore), "is not pinned"),
        ("pull secret after apply", (ci, moved, dockerfile, dockerignore), "must come before"),
        ("no SHA tag", (ci, deploy.replace("${{ steps.image.outputs.name }}:${{ github.sha }}", "${{ steps.image.outputs.name }}:main"), dockerfile, dockerignore), "commit SHA and latest"),
        ("ci without scripts/test", (ci.replace("run: scripts/test", "run: cargo test"), deploy, dockerfile, dockerignore), "runs scripts/test"),
        ("no diagnostics", (ci, deploy.replace("if: failure()", "if: success()"), dockerfile, dockerignore), "diagnostics on failure"),
        ("secret keys drift", (ci, deploy.replace(" REDIS_URL\n", "\n", 1), dockerfile, dockerignore), "REQUIRED_SECRET_KEYS"),
        ("root image", (ci, deploy, dockerfile.replace("USER 65532:65532", "USER root"), dockerignore), "root or a low uid"),
        ("HEALTHCHECK", (ci, deploy, dockerfile + "HEALTHCHECK CMD [\"/x\"]\n", dockerignore), "HEALTHCHECK"),
        ("latest base", (ci, deploy, dockerfile.replace("cc-debian12:nonroot", "cc-debian12:latest"), dockerignore), "no fixed tag"),
        ("untagged base", (ci, deploy, dockerfile.replace("ARG RUST_VERSION=1.95.0", "ARG RUST_VERSION"), dockerignore), "no fixed tag"),
        ("single stage", (ci, deploy, "FROM rust:1.95.0-slim-bookworm\nCOPY . .\nRUN cargo build --locked --release\nUSER 65532\nENTRYPOINT [\"/x\"]\n", dockerignore), "not a multi-stage"),
        ("no dependency layer", (ci, deploy, dockerfile.replace("RUN cargo chef cook", "RUN true || cargo chef nothing"), dockerignore), "not cooked"),
        ("workspace member ignored", (ci, deploy, dockerfile, dockerignore + "services\n"), "excludes services/"),
        ("pin step misses a binary", (ci, deploy.replace("for bin in cloud-api cloud-realtime runtime-headless; do\n            ref=", "for bin in cloud-api cloud-realtime; do\n            ref="), dockerfile, dockerignore), "does not set the image of runtime-headless"),
        ("target in context", (ci, deploy, dockerfile, dockerignore.replace("**/target\n", "")), "target is not excluded"),
    ]
    problems = []
    for desc, args, needle in cases:
        errs = [e for e in run_all(*args, rendered_docs) if needle in e]
        if errs:
            print(f"  self-test: {desc}: caught ({errs[0]})")
        else:
            problems.append(f"self-test: mutation '{desc}' was NOT caught (no error containing {needle!r})")
    return problems


def main():
    rendered = sys.argv[1]
    with open(rendered) as f:
        rendered_docs = [d for d in yaml.safe_load_all(f) if d]
    files = (read(".github/workflows/ci.yml"), read(".github/workflows/deploy-cloud.yml"),
             read("docker/Dockerfile"), read(".dockerignore"))
    errors = run_all(*files, rendered_docs)
    if "--self-test" in sys.argv and not errors:
        errors += self_test(files, rendered_docs)
    sys.stdout.flush()
    for e in errors:
        print(f"DELIVERY: {e}", file=sys.stderr)
    print(f"delivery checks: {len(errors)} problem(s)", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
