#!/usr/bin/env python3
"""Static checks of the delivery files that actionlint and checkov do not cover.

usage: check_delivery.py <rendered production overlay> [--self-test]

Workflows (.github/workflows)
  ci.yml           runs scripts/test on push, pull_request and workflow_call.
  deploy-cloud.yml triggers only on push to main and workflow_dispatch (never pull_request,
                   never a tag push); every job hangs off a guard job limited to main (and
                   tags on a manual run); the image and deploy jobs depend on the job calling
                   ci.yml and require its success (same run, same commit); builds every
                   workspace binary with docker/Dockerfile, tags :<sha> and :latest; the deploy
                   job decodes KUBE_CONFIG, checks connectivity, applies the persistent layer,
                   creates the pull secret, pins images by digest, applies, waits for
                   rollouts, smoke-tests (scripts/deploy/smoke.py), `rollout undo`es on
                   failure, prunes the app layer only after that (never namespaces, PVCs or
                   secrets) and dumps diagnostics on failure; a rollback_to input redeploys
                   existing images without the image jobs; REQUIRED_SECRET_KEYS and
                   REQUIRED_BACKUP_SECRET_KEYS equal the keys the production pods need.
  every `uses:`    of a third-party action is the commit SHA of tools/lint/action-pins.txt,
                   with the release tag as a trailing comment.
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


USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*([^\s#]+)\s*(?:#\s*(\S+))?\s*$")
SHA = re.compile(r"^[0-9a-f]{40}$")


def action_pins():
    """owner/repo -> (tag, sha) from tools/lint/action-pins.txt."""
    pins = {}
    for line in read("tools/lint/action-pins.txt").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            repo, tag, sha = line.split()
            pins[repo] = (tag, sha)
    return pins


def check_pins(name, text, pins, errors):
    """Every third-party action is used by the commit SHA listed in action-pins.txt, with its
    release tag as a trailing comment; local reusable workflows are the only exception."""
    for n, line in enumerate(text.splitlines(), 1):
        m = USES_LINE.match(line)
        if not m:
            continue
        ref, comment = m.group(1), m.group(2)
        if ref.startswith("./"):
            continue
        action, _, version = ref.partition("@")
        repo = "/".join(action.split("/")[:2])
        if not SHA.match(version):
            errors.append(f"{name}:{n}: `uses: {ref}` is not pinned by commit SHA")
            continue
        if repo not in pins:
            errors.append(f"{name}:{n}: {repo} is not listed in tools/lint/action-pins.txt")
            continue
        tag, sha = pins[repo]
        if version != sha:
            errors.append(f"{name}:{n}: {repo}@{version} is not the pinned SHA {sha} ({tag})")
        if comment != tag:
            errors.append(f"{name}:{n}: {repo} pin needs the comment `# {tag}` (found {comment!r})")


def required_secret_keys(rendered_docs):
    """secret name -> keys a pod cannot start without."""
    keys: dict[str, set] = {}
    for d in rendered_docs:
        kind = d.get("kind")
        if kind == "CronJob":
            spec = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif kind in ("Deployment", "StatefulSet", "Job"):
            spec = d["spec"]["template"]["spec"]
        else:
            continue
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional") and ref.get("name") != "ghcr-pull":
                    keys.setdefault(ref["name"], set()).add(ref["key"])
        for v in spec.get("volumes", []):
            s = v.get("secret")
            if s and not s.get("optional"):
                keys.setdefault(s["secretName"], set()).update(i["key"] for i in s.get("items", []))
    return keys


def needs_of(job):
    n = job.get("needs") or []
    return [n] if isinstance(n, str) else list(n)


def depends_on(jobs, name, target, seen=None):
    seen = seen or set()
    for n in needs_of(jobs.get(name, {})):
        if n == target or (n not in seen and depends_on(jobs, n, target, seen | {n})):
            return True
    return False


def check_workflows(ci_text, deploy_text, rendered_docs, bins, errors):
    pins = action_pins()
    for name, text in (("ci.yml", ci_text), ("deploy-cloud.yml", deploy_text)):
        check_pins(name, text, pins, errors)
    ci = yaml.safe_load(ci_text)
    t = triggers(ci)
    if "push" not in t or "pull_request" not in t or "workflow_call" not in t:
        errors.append("ci.yml: must run on push, pull_request and workflow_call (deploy-cloud calls it)")
    if not any("scripts/test" in str(s.get("run", "")) for _, _, s in all_steps(ci)):
        errors.append("ci.yml: no step runs scripts/test")

    wf = yaml.safe_load(deploy_text)
    jobs = wf.get("jobs") or {}
    t = triggers(wf)
    if set(t) - {"push", "workflow_dispatch"}:
        errors.append(f"deploy-cloud.yml: triggers {sorted(map(str, t))}: only push to main and workflow_dispatch allowed")
    push = t.get("push") or {}
    if push.get("branches") != ["main"] or push.get("tags") or push.get("branches-ignore") \
            or push.get("tags-ignore"):
        errors.append("deploy-cloud.yml: push trigger must be limited to branches [main]")
    if "workflow_dispatch" not in t:
        errors.append("deploy-cloud.yml: no workflow_dispatch trigger (manual runs and rollback)")
    perms = wf.get("permissions") or {}
    if perms != {"contents": "read"}:
        errors.append("deploy-cloud.yml: top-level permissions must be contents: read only")

    # The job running CI for this commit, and the job that touches the cluster.
    ci_jobs = [n for n, j in jobs.items() if j.get("uses") == "./.github/workflows/ci.yml"]
    deploy_jobs = [n for n, j in jobs.items()
                   if any("KUBE_CONFIG" in json.dumps(s) for s in j.get("steps") or [])]
    image_jobs = [n for n, j in jobs.items()
                  if any(str(s.get("uses", "")).startswith("docker/build-push-action") for s in j.get("steps") or [])]
    if not ci_jobs:
        errors.append("deploy-cloud.yml: no job calls ./.github/workflows/ci.yml")
    if not deploy_jobs:
        errors.append("deploy-cloud.yml: no deploy job (uses KUBE_CONFIG)")
    # Main/tags only: every job hangs off a guard job whose `if` admits main and, by hand, tags.
    ref_rule = re.compile(r"github\.ref\s*==\s*'refs/heads/main'")
    guards = [n for n, j in jobs.items() if not needs_of(j) and ref_rule.search(str(j.get("if", "")))
              and "refs/tags/" in str(j.get("if", "")) and "workflow_dispatch" in str(j.get("if", ""))]
    if not guards:
        errors.append("deploy-cloud.yml: no guard job limited to main (and tags on workflow_dispatch)")
    for n, j in jobs.items():
        if n in guards:
            continue
        if not any(n == g or depends_on(jobs, n, g) for g in guards):
            errors.append(f"deploy-cloud.yml: job {n} does not depend on the main/tags guard")
        if not needs_of(j):
            errors.append(f"deploy-cloud.yml: job {n} runs without the guard")
    for g in guards:
        text = json.dumps(jobs[g])
        if "refs/heads/main" not in text or "exit 1" not in text:
            errors.append(f"deploy-cloud.yml: guard {g} does not refuse other refs in a step")
    for d in deploy_jobs + image_jobs:
        if not any(depends_on(jobs, d, c) for c in ci_jobs):
            errors.append(f"deploy-cloud.yml: job {d} does not depend on CI")
        cond = str(jobs[d].get("if", ""))
        for c in ci_jobs:
            if f"needs.{c}.result == 'success'" not in cond:
                errors.append(f"deploy-cloud.yml: job {d} does not require needs.{c}.result == 'success'")
    for d in deploy_jobs:
        for i in image_jobs:
            if not depends_on(jobs, d, i) or f"needs.{i}.result == 'success'" not in str(jobs[d].get("if", "")):
                errors.append(f"deploy-cloud.yml: job {d} does not require the image job {i} to succeed")

    steps = [(j, i, s) for j, i, s in all_steps(wf)]
    text_of = lambda s: json.dumps(s)
    def first(pred, job=None):
        return next(((j, i) for j, i, s in steps if (job is None or j == job) and pred(s)), None)
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
        inc.get("bin") for job in jobs.values()
        for inc in (((job.get("strategy") or {}).get("matrix") or {}).get("include") or []))
    if matrix_bins != bins:
        errors.append(f"deploy-cloud.yml: builds {matrix_bins}, the workspace has {bins}")
    if first(lambda s: "ghcr.io/" in text_of(s) and "GITHUB_REPOSITORY_OWNER,," in text_of(s)) is None:
        errors.append("deploy-cloud.yml: image names must be ghcr.io/<lower-cased owner>/<bin>")
    # Deploy sequence.
    dj = deploy_jobs[0] if deploy_jobs else None
    run = lambda s: str(s.get("run", ""))
    decode = first(lambda s: "KUBE_CONFIG" in text_of(s) and "base64 -d" in text_of(s), dj)
    connect = first(lambda s: "cluster-info" in run(s), dj)
    persistent = first(lambda s: "-k k8s/persistent" in run(s), dj)
    pull = first(lambda s: "ghcr-pull" in run(s) and "dockerconfigjson" in run(s), dj)
    pin = first(lambda s: "imagetools inspect" in run(s) and "digest" in run(s) and "IMAGE_SHA" in run(s), dj)
    apply = first(lambda s: re.search(r"kubectl apply\b(?!.*--dry-run)[^\n]*rendered", run(s)) is not None, dj)
    rollout = first(lambda s: "rollout status" in run(s) and "rollout undo" not in run(s), dj)
    smoke = first(lambda s: "scripts/deploy/smoke.py" in run(s), dj)
    undo = first(lambda s: "rollout undo" in run(s) and "failure()" in str(s.get("if", "")), dj)
    prune = first(lambda s: "delete" in run(s) and "PRUNE_KINDS" in run(s), dj)
    diag = first(lambda s: s.get("if") == "failure()" and "logs" in run(s) and "describe" in run(s), dj)
    labels = (("decode KUBE_CONFIG", decode), ("check connectivity", connect),
              ("apply the persistent layer", persistent), ("ensure the image pull secret", pull),
              ("pin the images by digest", pin), ("apply", apply), ("wait for rollouts", rollout),
              ("smoke test", smoke), ("rollout undo on failure", undo), ("prune", prune),
              ("diagnostics on failure", diag))
    for label, pos in labels:
        if pos is None:
            errors.append(f"deploy-cloud.yml: no step that does: {label}")
    order = [("decode KUBE_CONFIG", decode), ("check connectivity", connect),
             ("apply the persistent layer", persistent), ("ensure the image pull secret", pull),
             ("pin images", pin), ("apply", apply), ("wait for rollouts", rollout),
             ("smoke test", smoke), ("rollout undo on failure", undo), ("prune", prune)]
    present = [(l, p) for l, p in order if p is not None]
    for (la, pa), (lb, pb) in zip(present, present[1:]):
        if pa[1] > pb[1]:
            errors.append(f"deploy-cloud.yml: '{la}' must come before '{lb}'")
    if undo is not None:
        u = jobs[undo[0]]["steps"][undo[1]]
        for b in bins:
            if b not in run(u) and "for d in" not in run(u):
                errors.append(f"deploy-cloud.yml: the undo step does not roll back {b}")
    if prune is not None:
        kinds = str((wf.get("env") or {}).get("PRUNE_KINDS", "")).split()
        for forbidden in ("namespaces", "persistentvolumeclaims", "secrets"):
            if any(k.split(".")[0] == forbidden for k in kinds):
                errors.append(f"deploy-cloud.yml: PRUNE_KINDS includes {forbidden}")
        if "chatons.ai/layer=app" not in run(jobs[prune[0]]["steps"][prune[1]]):
            errors.append("deploy-cloud.yml: prune must select the app layer (-l chatons.ai/layer=app)")
    # Rollback: a dispatch input names the commit whose images are redeployed, no rebuild.
    inputs = ((t.get("workflow_dispatch") or {}).get("inputs") or {})
    if "rollback_to" not in inputs:
        errors.append("deploy-cloud.yml: no rollback_to input (redeploy an existing image digest)")
    if dj and "'rollback'" not in str(jobs[dj].get("if", "")):
        errors.append("deploy-cloud.yml: the deploy job cannot run in rollback mode")
    for n in image_jobs:
        if "mode == 'build'" not in str(jobs[n].get("if", "")):
            errors.append(f"deploy-cloud.yml: image job {n} also runs on a rollback (rebuild)")
    # Any kubectl apply of the overlay before the pull secret exists?
    if pull is not None:
        for j, i, s in steps:
            if j == pull[0] and i < pull[1] and re.search(r"kubectl apply[^\n]*(rendered|overlays)", run(s)):
                errors.append("deploy-cloud.yml: the overlay is applied before the image pull secret exists")
    # The pin step must name every binary, under the image names the overlay really uses.
    if pin is not None:
        pin_text = text_of(jobs[pin[0]]["steps"][pin[1]])
        rendered_images = {c["image"].split("@")[0].rsplit(":", 1)[0]
                           for d in rendered_docs if d.get("kind") == "Deployment"
                           for c in d["spec"]["template"]["spec"].get("containers", [])}
        for b in bins:
            if b not in pin_text:
                errors.append(f"deploy-cloud.yml: the pin step does not set the image of {b}")
            if f"ghcr.io/chatons/{b}" not in rendered_images:
                errors.append(f"deploy-cloud.yml: the production overlay has no image ghcr.io/chatons/{b} to pin")
        if "name: ghcr.io/chatons/$bin" not in pin_text:
            errors.append("deploy-cloud.yml: the pin step must rewrite ghcr.io/chatons/<bin>")
    want = required_secret_keys(rendered_docs)
    env = wf.get("env") or {}
    for var, secret in (("REQUIRED_SECRET_KEYS", "chatons-cloud-secrets"),
                        ("REQUIRED_BACKUP_SECRET_KEYS", "chatons-backup-offsite")):
        got = set(str(env.get(var, "")).split())
        if want.get(secret, set()) != got:
            errors.append(f"deploy-cloud.yml: {var} {sorted(got)} != keys the pods need from {secret} {sorted(want.get(secret, set()))}")
    unknown = set(want) - {"chatons-cloud-secrets", "chatons-backup-offsite"}
    if unknown:
        errors.append(f"deploy-cloud.yml: pods need secrets the deploy does not check: {sorted(unknown)}")


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
    smoke_block = deploy[deploy.index("      - name: Smoke test"):deploy.index("      - name: Roll back the Deployments")]
    moved = deploy.replace(smoke_block, "").replace("      - name: Wait for the rollouts", smoke_block + "      - name: Wait for the rollouts")
    checkout = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
    deploy_if = "(needs.guard.outputs.mode == 'build' && needs.ci.result == 'success' && needs.images.result == 'success')"
    cases = [
        ("deploy on pull_request", (ci, deploy.replace("  workflow_dispatch:\n", "  pull_request:\n  workflow_dispatch:\n", 1), dockerfile, dockerignore), "only push to main"),
        ("deploy on every branch", (ci, deploy.replace("    branches: [main]\n", "    branches: ['**']\n", 1), dockerfile, dockerignore), "limited to branches [main]"),
        ("deploy on tag pushes", (ci, deploy.replace("    branches: [main]\n", "    branches: [main]\n    tags: ['v*']\n", 1), dockerfile, dockerignore), "limited to branches [main]"),
        ("action on a branch", (ci, deploy.replace(checkout, "actions/checkout@main", 1), dockerfile, dockerignore), "is not pinned by commit SHA"),
        ("action on a tag", (ci.replace("actions/setup-node@49933ea5288caeca8642d1e84afbd3f7d6820020 # v4.4.0", "actions/setup-node@v4.4.0"), deploy, dockerfile, dockerignore), "is not pinned by commit SHA"),
        ("unlisted SHA", (ci, deploy.replace(checkout, "actions/checkout@0000000000000000000000000000000000000000 # v4.2.2", 1), dockerfile, dockerignore), "is not the pinned SHA"),
        ("pin without its tag", (ci, deploy.replace(checkout, checkout.split(" #")[0], 1), dockerfile, dockerignore), "needs the comment"),
        ("deploy without CI", (ci, deploy.replace("    needs: [guard, ci, images]\n", "    needs: [guard, images]\n").replace("needs: [guard, ci]\n", "needs: [guard]\n"), dockerfile, dockerignore), "does not depend on CI"),
        ("deploy after a failed CI", (ci, deploy.replace(deploy_if, "(needs.guard.outputs.mode == 'build' && needs.images.result == 'success')"), dockerfile, dockerignore), "needs.ci.result == 'success'"),
        ("manual run from any branch", (ci, deploy.replace("    if: github.ref == 'refs/heads/main' || (github.event_name == 'workflow_dispatch' && startsWith(github.ref, 'refs/tags/'))\n", ""), dockerfile, dockerignore), "no guard job"),
        ("job outside the guard", (ci, deploy.replace("    needs: guard\n    if: needs.guard.outputs.mode == 'build'\n    uses:", "    uses:"), dockerfile, dockerignore), "does not depend on the main/tags guard"),
        ("rollback rebuilds", (ci, deploy.replace("    if: needs.guard.outputs.mode == 'build' && needs.ci.result == 'success'\n    runs-on", "    if: needs.ci.result == 'success'\n    runs-on"), dockerfile, dockerignore), "also runs on a rollback"),
        ("smoke before the rollout", (ci, moved, dockerfile, dockerignore), "must come before"),
        ("no undo", (ci, deploy.replace("if: failure() && steps.apply.outcome == 'success'", "if: success()"), dockerfile, dockerignore), "rollout undo on failure"),
        ("prune the volumes", (ci, deploy.replace("    middlewares.traefik.io", "    persistentvolumeclaims middlewares.traefik.io"), dockerfile, dockerignore), "PRUNE_KINDS includes persistentvolumeclaims"),
        ("ci without workflow_call", (ci.replace("  workflow_call:\n", ""), deploy, dockerfile, dockerignore), "workflow_call"),
        ("ci without scripts/test", (ci.replace("run: scripts/test", "run: cargo test"), deploy, dockerfile, dockerignore), "runs scripts/test"),
        ("no diagnostics", (ci, deploy.replace("      - name: Diagnostics\n        if: failure()", "      - name: Diagnostics\n        if: success()"), dockerfile, dockerignore), "diagnostics on failure"),
        ("secret keys drift", (ci, deploy.replace(" REDIS_URL\n", "\n", 1), dockerfile, dockerignore), "REQUIRED_SECRET_KEYS"),
        ("root image", (ci, deploy, dockerfile.replace("USER 65532:65532", "USER root"), dockerignore), "root or a low uid"),
        ("HEALTHCHECK", (ci, deploy, dockerfile + "HEALTHCHECK CMD [\"/x\"]\n", dockerignore), "HEALTHCHECK"),
        ("latest base", (ci, deploy, dockerfile.replace("cc-debian12:nonroot", "cc-debian12:latest"), dockerignore), "no fixed tag"),
        ("untagged base", (ci, deploy, dockerfile.replace("ARG RUST_VERSION=1.95.0", "ARG RUST_VERSION"), dockerignore), "no fixed tag"),
        ("single stage", (ci, deploy, "FROM rust:1.95.0-slim-bookworm\nCOPY . .\nRUN cargo build --locked --release\nUSER 65532\nENTRYPOINT [\"/x\"]\n", dockerignore), "not a multi-stage"),
        ("no dependency layer", (ci, deploy, dockerfile.replace("RUN cargo chef cook", "RUN true || cargo chef nothing"), dockerignore), "not cooked"),
        ("workspace member ignored", (ci, deploy, dockerfile, dockerignore + "services\n"), "excludes services/"),
        ("pin step misses a binary", (ci, deploy.replace("for bin in cloud-api cloud-realtime runtime-headless; do\n              ref=", "for bin in cloud-api cloud-realtime; do\n              ref="), dockerfile, dockerignore), "does not set the image of runtime-headless"),
        ("target in context", (ci, deploy, dockerfile, dockerignore.replace("**/target\n", "")), "target is not excluded"),
    ]
    problems = []
    for desc, args, needle in cases:
        if args[:2] == (ci, deploy) and args[2:] == (dockerfile, dockerignore):
            problems.append(f"self-test: mutation '{desc}' changed nothing (its text no longer matches)")
            continue
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
