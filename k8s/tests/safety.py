"""Data-safety and capacity checks of the manifest contract.

budget   Postgres connections at the autoscalers' maxima stay below max_connections: every
         Deployment that connects (DATABASE_URL) counts pool size × (HPA maximum + maxSurge),
         init containers, jobs and the exporter count what they open, and the server keeps
         its reserved superuser slots.
layers   no overlay renders the Namespace or a PersistentVolumeClaim (they live in
         k8s/persistent, so `kubectl delete -k` of the app never deletes data); StatefulSets
         retain their volumes when deleted or scaled; every app object carries the prune
         label chatons.ai/layer=app and no persistent object does.
"""
from __future__ import annotations

import re

RESERVED = 3          # Postgres superuser_reserved_connections default
MIGRATE = 2           # `cloud-api migrate` pool (services/cloud-api/src/state.rs)
ONE = 1               # psql (db-setup init container, pg_dump, the exporter)
CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "ClusterRole", "ClusterRoleBinding", "GatewayClass"}
POOL_VARS = {"cloud-api": "CHATONS_CLOUD_DB_POOL_SIZE", "runtime-headless": "CHATONS_RUNTIME_DB_POOL_SIZE"}


def max_connections(docs):
    """(limit, where it comes from) of the Postgres the manifests use."""
    for d in docs:
        if d.get("kind") == "StatefulSet" and d["metadata"]["name"] == "postgres":
            c = d["spec"]["template"]["spec"]["containers"][0]
            args = " ".join(c.get("args", []) + c.get("command", []))
            m = re.search(r"max_connections=(\d+)", args)
            return (int(m.group(1)) if m else 100), "StatefulSet/postgres"
    for d in docs:
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("chatons-datastores"):
            v = (d.get("data") or {}).get("POSTGRES_MAX_CONNECTIONS")
            if v:
                return int(v), "managed Postgres (ConfigMap chatons-datastores)"
    return None, "no Postgres (StatefulSet postgres, or ConfigMap chatons-datastores of a managed one)"


def hpa_max(docs, name):
    for h in docs:
        if h.get("kind") == "HorizontalPodAutoscaler" and h["spec"]["scaleTargetRef"]["name"] == name:
            return h["spec"]["maxReplicas"]
    return None


def surge(dep):
    s = ((dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", 1)
    return s if isinstance(s, int) else 1


def budget(docs, bins, env_value, binary_of, cms):
    """(total, limit, lines) of the connection budget."""
    limit, source = max_connections(docs)
    lines, total = [], RESERVED
    lines.append(f"reserved superuser slots: {RESERVED}")
    for d in docs:
        kind = d.get("kind")
        if kind not in ("Deployment", "CronJob", "Job"):
            continue
        spec = (d["spec"]["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob"
                else d["spec"]["template"]["spec"])
        if kind == "Deployment":
            replicas = hpa_max(docs, d["metadata"]["name"])
            replicas = (replicas if replicas is not None else d["spec"].get("replicas", 1)) + surge(d)
        else:
            replicas = 1
        # Init containers run one after the other, before the main containers: a pod holds
        # at most the larger of its biggest init step and its main containers' pools.
        inits, mains = [], []
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            is_init = c in spec.get("initContainers", [])
            names = {e["name"] for e in c.get("env", [])}
            text = " ".join(c.get("command", []) + c.get("args", []))
            b = binary_of(c)
            per_pod = 0
            if b in POOL_VARS and "DATABASE_URL" in names:
                if is_init:
                    per_pod = MIGRATE
                else:
                    raw = env_value(c, POOL_VARS[b], cms)
                    per_pod = int(raw) if raw else int(bins[b].defaults.get(POOL_VARS[b], "10"))
            elif b is None and ("psql" in text or "pg_dump" in text or "DATA_SOURCE_URI" in names):
                per_pod = ONE
            if per_pod:
                (inits if is_init else mains).append((c["name"], per_pod))
        per_pod = max([n for _, n in inits] + [sum(n for _, n in mains)] + [0])
        if per_pod:
            n = per_pod * replicas
            total += n
            what = ", ".join(f"{c} {k}" for c, k in mains) or "init only"
            lines.append(f"{kind}/{d['metadata']['name']} ({what}; init {max([k for _, k in inits] + [0])}): "
                         f"{per_pod} × {replicas} pod(s) = {n}")
    return total, limit, source, lines


def check_budget(docs, overlay, bins, env_value, binary_of, cms, errors, verbose=True):
    total, limit, source, lines = budget(docs, bins, env_value, binary_of, cms)
    if limit is None:
        errors.append(f"[{overlay}] connection budget: {source}")
        return
    if verbose:
        print(f"  [{overlay}] Postgres connection budget: {total} of max_connections {limit} ({source})")
        for l in lines:
            print(f"      {l}")
    if total >= limit:
        errors.append(f"[{overlay}] connection budget: {total} connections at the HPA maxima >= max_connections {limit} ({source})")


def check_layers(docs, overlay, errors, persistent=None):
    for d in docs:
        kind, name = d.get("kind"), d["metadata"]["name"]
        if kind in ("Namespace", "PersistentVolumeClaim"):
            errors.append(f"[{overlay}] renders {kind}/{name}: `kubectl delete -k` of the app would delete it (move it to k8s/persistent)")
        if kind not in CLUSTER_SCOPED and d["metadata"].get("namespace") != "chatons-cloud":
            errors.append(f"[{overlay}] {kind}/{name} is not in the namespace chatons-cloud "
                          f"(a component's resource needs metadata.namespace)")
        labels = d["metadata"].get("labels") or {}
        if labels.get("chatons.ai/layer") != "app":
            errors.append(f"[{overlay}] {kind}/{name} lacks the label chatons.ai/layer=app (the deploy prunes by it)")
        if kind == "StatefulSet":
            pol = d["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
            if pol.get("whenDeleted", "Retain") != "Retain" or pol.get("whenScaled", "Retain") != "Retain" or not pol:
                errors.append(f"[{overlay}] StatefulSet/{name} must retain its volumes (persistentVolumeClaimRetentionPolicy Retain/Retain)")
    if persistent is not None:
        kinds = {d["kind"] for d in persistent}
        if not {"Namespace", "PersistentVolumeClaim"} <= kinds:
            errors.append(f"k8s/persistent must hold the Namespace and the backups PVC, has {sorted(kinds)}")
        for d in persistent:
            if (d["metadata"].get("labels") or {}).get("chatons.ai/layer") == "app":
                errors.append(f"k8s/persistent: {d['kind']}/{d['metadata']['name']} carries the prune label chatons.ai/layer=app")
        claims = {d["metadata"]["name"] for d in persistent if d["kind"] == "PersistentVolumeClaim"}
        for d in docs:
            if d.get("kind") == "CronJob":
                for v in d["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("volumes", []):
                    c = (v.get("persistentVolumeClaim") or {}).get("claimName")
                    if c and c not in claims:
                        errors.append(f"[{overlay}] CronJob/{d['metadata']['name']} mounts claim {c}, which k8s/persistent does not create")
