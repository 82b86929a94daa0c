"""Alert rules and dashboards must speak about metrics that exist, and every alert must have
a runbook.

chatons_* names are checked against what the binaries really export (the `# TYPE` lines of
their /metrics, expanded the way Prometheus names series: counters `_total`, histograms
`_bucket`/`_sum`/`_count`). Names from other exporters are checked against the list below,
which names their source.
"""
from __future__ import annotations

import json
import os
import re

EXTERNAL = {
    # kube-state-metrics
    "kube_deployment_status_replicas_available", "kube_deployment_status_replicas_unavailable",
    "kube_horizontalpodautoscaler_status_current_replicas", "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_statefulset_status_replicas_ready", "kube_cronjob_status_last_successful_time",
    # postgres_exporter (k8s/components/exporters)
    "pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections",
    # redis_exporter (k8s/components/exporters)
    "redis_up", "redis_memory_used_bytes", "redis_connected_clients",
}
NAME = re.compile(r"\b((?:chatons|kube|pg|redis)_[a-zA-Z0-9_]+)\b")


def exported_series(metrics_text: str) -> set[str]:
    series = set()
    for line in metrics_text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if not m:
            continue
        name, kind = m.groups()
        if kind == "counter":
            series.add(name + "_total")
        elif kind == "histogram":
            series |= {name + "_bucket", name + "_sum", name + "_count"}
        else:
            series.add(name)
    return series


def expressions(docs):
    """(where, PromQL) of every alert and dashboard target in the manifests."""
    out, alerts = [], []
    for d in docs:
        if d.get("kind") == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for r in g["rules"]:
                    where = f"PrometheusRule/{d['metadata']['name']} {r.get('alert') or r.get('record')}"
                    out.append((where, r["expr"]))
                    if "alert" in r:
                        alerts.append((where, r))
        if d.get("kind") == "ConfigMap" and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1":
            for fname, text in (d.get("data") or {}).items():
                dash = json.loads(text)
                for p in dash.get("panels", []):
                    for t in p.get("targets", []):
                        out.append((f"dashboard {fname} panel {p.get('title')!r}", t.get("expr", "")))
    return out, alerts


def check(docs, overlay, exported: set[str] | None, operations_md: str, errors):
    exprs, alerts = expressions(docs)
    if not exprs:
        return 0
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", operations_md, re.M)}
    for where, expr in exprs:
        for name in set(NAME.findall(expr)):
            if name.startswith("chatons_"):
                if exported is not None and name not in exported:
                    errors.append(f"[{overlay}] {where}: {name} is not exported by any binary")
            elif name not in EXTERNAL:
                errors.append(f"[{overlay}] {where}: {name} is not a known kube-state-metrics/exporter series")
    for where, rule in alerts:
        runbook = (rule.get("annotations") or {}).get("runbook", "")
        anchor = runbook.partition("#")[2]
        if not runbook.startswith("docs/OPERATIONS.md#") or anchor not in anchors:
            errors.append(f"[{overlay}] {where}: runbook {runbook!r} has no section in docs/OPERATIONS.md")
        if anchor != rule["alert"].lower():
            errors.append(f"[{overlay}] {where}: runbook anchor must be #{rule['alert'].lower()}")
        if (rule.get("labels") or {}).get("severity") not in ("warning", "critical"):
            errors.append(f"[{overlay}] {where}: severity must be warning or critical")
    return len(exprs)
