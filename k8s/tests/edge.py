"""Public edge checks of the manifest contract: what each public URL reaches.

Two edges are understood: Gateway API (Gateway + HTTPRoutes, the default) and the legacy
ingress-nginx Ingresses (k8s/components/ingress-nginx). For both, a request (host, path) is
resolved with the implementation's matching rules and followed to the application behind
the Service; internal paths must reach no application on any host.
"""
from __future__ import annotations

import re
from urllib.parse import urlparse

# Paths each binary serves only internally: no public host may route them to that binary
# (another binary would only answer 404). /metrics is served by all three.
INTERNAL = {
    "cloud-api": ("/v1/internal", "/v1/internal/realtime/access", "/v1/internal/runtime/access",
                  "/v1/internal/memory/upsert", "/metrics", "/metrics/"),
    "cloud-realtime": ("/v1/realtime/events", "/metrics"),
    "runtime-headless": ("/metrics",),
}
PUBLIC_REALTIME = ("/ws", "/v1/realtime/token", "/v1/realtime/replay")
GW = "gateway.networking.k8s.io"


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def find(docs, kind, name):
    return next((d for d in by_kind(docs, kind) if d["metadata"]["name"] == name), None)


def app_behind(docs, svc_name):
    """The binary selected by a Service, or None (no such Service, or it selects no pod)."""
    svc = find(docs, "Service", svc_name) if svc_name else None
    if svc is None or not svc["spec"].get("selector"):
        return None
    return svc["spec"]["selector"].get("app.kubernetes.io/name")


def prefix_match(prefix, path):
    """Gateway API / Ingress Prefix semantics: element-wise, trailing slash ignored."""
    norm = prefix.rstrip("/")
    return norm == "" or path == norm or path.startswith(norm + "/")


# ---------------------------------------------------------------- Gateway API

def duration_seconds(value):
    """GEP-2257 duration ("1h", "30s", "500ms", "1m30s") in seconds."""
    total = 0.0
    for num, unit in re.findall(r"(\d+)(h|ms|m|s)", value or ""):
        total += int(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def attached_routes(docs, listener_name=None):
    """HTTPRoutes attached to a Gateway of these manifests (optionally to one listener)."""
    gateways = {g["metadata"]["name"]: g for g in by_kind(docs, "Gateway")}
    out = []
    for r in by_kind(docs, "HTTPRoute"):
        for ref in r["spec"].get("parentRefs", []):
            gw = gateways.get(ref.get("name"))
            if gw is None or ref.get("kind", "Gateway") != "Gateway":
                continue
            listeners = {l["name"]: l for l in gw["spec"]["listeners"]}
            section = ref.get("sectionName")
            if section is not None and section not in listeners:
                continue
            names = [section] if section else list(listeners)
            if listener_name is None or listener_name in names:
                out.append((r, [listeners[n] for n in names]))
                break
    return out


def gateway_route(docs, host, path, scheme="https"):
    """(route, rule) a request reaches under Gateway API precedence, or (None, None).
    Exact beats PathPrefix, longer prefixes beat shorter ones, across every HTTPRoute of the
    host attached to a listener of the scheme."""
    proto = "HTTPS" if scheme == "https" else "HTTP"
    best, best_key = (None, None), None
    for r, listeners in attached_routes(docs):
        if not any(l["protocol"] == proto for l in listeners):
            continue
        hostnames = r["spec"].get("hostnames") or [None]
        if host not in hostnames and None not in hostnames:
            continue
        for rule in r["spec"].get("rules", []):
            for m in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                p = m.get("path") or {"type": "PathPrefix", "value": "/"}
                kind, value = p.get("type", "PathPrefix"), p.get("value", "/")
                if kind == "Exact" and path == value:
                    key = (2, len(value))
                elif kind == "PathPrefix" and prefix_match(value, path):
                    key = (1, len(value.rstrip("/")))
                else:
                    continue
                if best_key is None or key > best_key:
                    best, best_key = (r, rule), key
    return best


def rule_app(docs, rule):
    if rule is None:
        return None
    refs = rule.get("backendRefs") or []
    apps = {app_behind(docs, b["name"]) for b in refs if b.get("kind", "Service") == "Service"}
    apps.discard(None)
    return apps.pop() if len(apps) == 1 else (None if not apps else "several")


def check_gateway(docs, overlay, cms, errors):
    gateways = by_kind(docs, "Gateway")
    if len(gateways) != 1:
        errors.append(f"[{overlay}] expected one Gateway, found {len(gateways)}")
        return
    gw = gateways[0]
    tls = overlay.startswith("production")
    scheme = "https" if tls else "http"
    hosts = sorted({h for r, _ in attached_routes(docs) for h in r["spec"].get("hostnames", [])})
    if len(hosts) < 3:
        errors.append(f"[{overlay}] expected cloud., api. and realtime. hosts, found {hosts}")

    def expect(host, path, app):
        r, rule = gateway_route(docs, host, path, scheme)
        got = rule_app(docs, rule)
        if got != app:
            errors.append(f"[{overlay}] route {host}{path} reaches {got or 'nothing'}, expected {app or 'nothing'}")
        return rule

    cloud = urlparse(cms.get("CHATONS_CLOUD_PUBLIC_URL", ""))
    rt = urlparse(cms.get("CHATONS_REALTIME_PUBLIC_URL", ""))
    run = urlparse(cms.get("CHATONS_RUNTIME_PUBLIC_URL", ""))
    expect(cloud.hostname, "/", "cloud-api")
    expect(cloud.hostname, "/.well-known/openid-configuration", "cloud-api")
    expect(cloud.hostname, "/v1/bootstrap", "cloud-api")
    expect(run.hostname, run.path.rstrip("/") + "/v1/runtime/sessions", "runtime-headless")
    expect(run.hostname, run.path.rstrip("/") + "/v1/runtime/sessions/x/commands", "runtime-headless")
    ws_rule = expect(rt.hostname, rt.path or "/ws", "cloud-realtime")
    expect(rt.hostname, "/v1/realtime/token", "cloud-realtime")
    expect(rt.hostname, "/v1/realtime/replay", "cloud-realtime")
    for h in hosts:
        for owner, paths in INTERNAL.items():
            for p in paths:
                for sch in ("http", "https"):
                    _, rule = gateway_route(docs, h, p, sch)
                    if rule_app(docs, rule) == owner:
                        errors.append(f"[{overlay}] route {sch}://{h}{p} reaches {owner}, which serves it internally")
    # Whatever is forwarded to realtime or runtime is one of their public paths.
    for r, _ in attached_routes(docs):
        for rule in r["spec"].get("rules", []):
            app = rule_app(docs, rule)
            for m in rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]:
                p = m.get("path") or {"type": "PathPrefix", "value": "/"}
                if app == "cloud-realtime" and (p.get("type") != "Exact" or p.get("value") not in PUBLIC_REALTIME):
                    errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} routes {p.get('value')} to cloud-realtime")
                if app == "runtime-headless" and not p.get("value", "/").startswith("/v1/runtime"):
                    errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} routes {p.get('value')} to runtime-headless")
            if app == "several":
                errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} splits a rule across applications")
    # The websocket route must not cut long-lived connections.
    if ws_rule is not None:
        t = (ws_rule.get("timeouts") or {}).get("request")
        if t is None or (duration_seconds(t) != 0 and duration_seconds(t) < 3600):
            errors.append(f"[{overlay}] the websocket route needs timeouts.request 0s (disabled) or >= 1h, has {t}")
    # Implementation policies: with Traefik's Middlewares, every forwarding rule is rate limited
    # and capped, through filters naming existing Middlewares.
    middlewares = {m["metadata"]["name"]: m for m in by_kind(docs, "Middleware")}
    if gw["spec"].get("gatewayClassName") == "traefik":
        for r, _ in attached_routes(docs):
            for i, rule in enumerate(r["spec"].get("rules", [])):
                if not rule_app(docs, rule):
                    continue
                refs = [f["extensionRef"]["name"] for f in rule.get("filters", [])
                        if f.get("type") == "ExtensionRef" and f.get("extensionRef", {}).get("kind") == "Middleware"]
                specs = [middlewares.get(n, {}).get("spec", {}) for n in refs]
                for n in refs:
                    if n not in middlewares:
                        errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} rule {i} names missing Middleware {n}")
                if not any((s.get("rateLimit") or {}).get("average") for s in specs):
                    errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} rule {i} has no rate limit")
                if not any((s.get("inFlightReq") or {}).get("amount") for s in specs):
                    errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} rule {i} has no concurrency cap")
        ports = {l["name"]: l["port"] for l in gw["spec"]["listeners"]}
        if ports.get("http") != 8000 or (tls and ports.get("https") != 8443):
            errors.append(f"[{overlay}] Gateway listener ports {ports} are not Traefik's entry points (8000/8443)")
    if tls:
        check_gateway_tls(docs, overlay, gw, cms, errors)


def check_gateway_tls(docs, overlay, gw, cms, errors):
    for key in ("CHATONS_CLOUD_PUBLIC_URL", "CHATONS_RUNTIME_PUBLIC_URL"):
        if not cms.get(key, "").startswith("https://"):
            errors.append(f"[{overlay}] public URL {key}={cms.get(key)} is not https")
    if not cms.get("CHATONS_REALTIME_PUBLIC_URL", "").startswith("wss://"):
        errors.append(f"[{overlay}] CHATONS_REALTIME_PUBLIC_URL is not wss://")
    certs = by_kind(docs, "Certificate")
    issuers = {i["metadata"]["name"]: i for i in by_kind(docs, "ClusterIssuer")}
    dns = {n for c in certs for n in c["spec"].get("dnsNames", [])}
    secrets = {c["spec"]["secretName"] for c in certs}
    for c in certs:
        ref = c["spec"]["issuerRef"]
        if ref.get("kind") != "ClusterIssuer" or ref["name"] not in issuers:
            errors.append(f"[{overlay}] Certificate {c['metadata']['name']} is not issued by a ClusterIssuer of these manifests")
    https = [l for l in gw["spec"]["listeners"] if l["protocol"] == "HTTPS"]
    if not https:
        errors.append(f"[{overlay}] the Gateway has no HTTPS listener")
    for l in https:
        for ref in (l.get("tls") or {}).get("certificateRefs", []):
            if ref["name"] not in secrets:
                errors.append(f"[{overlay}] listener {l['name']} uses TLS secret {ref['name']}, which no Certificate issues")
    for r, listeners in attached_routes(docs):
        plain = any(l["protocol"] == "HTTP" for l in listeners)
        for h in r["spec"].get("hostnames", []):
            if h not in dns:
                errors.append(f"[{overlay}] host {h} of HTTPRoute/{r['metadata']['name']} is not covered by the certificate")
        if plain:
            for rule in r["spec"].get("rules", []):
                redirect = any(f.get("type") == "RequestRedirect" and
                               (f.get("requestRedirect") or {}).get("scheme") == "https"
                               for f in rule.get("filters", []))
                if rule_app(docs, rule) or not redirect:
                    errors.append(f"[{overlay}] HTTPRoute/{r['metadata']['name']} serves plain HTTP (only an HTTPS redirect may)")
    # ACME HTTP-01 through the Gateway's plain-HTTP listener.
    for i in issuers.values():
        for s in i["spec"].get("acme", {}).get("solvers", []):
            parents = ((s.get("http01") or {}).get("gatewayHTTPRoute") or {}).get("parentRefs", [])
            if not any(p.get("name") == gw["metadata"]["name"] and p.get("sectionName") in
                       [l["name"] for l in gw["spec"]["listeners"] if l["protocol"] == "HTTP"] for p in parents):
                errors.append(f"[{overlay}] ClusterIssuer {i['metadata']['name']} does not solve HTTP-01 through the Gateway's HTTP listener")


# ---------------------------------------------------------------- legacy Ingress

def ingress_route(docs, host, path):
    """ingress-nginx semantics: Exact beats Prefix, longest Prefix wins (element-wise)."""
    best, best_len = (None, None), -1
    for ing in by_kind(docs, "Ingress"):
        for rule in ing["spec"].get("rules", []):
            if rule.get("host") != host:
                continue
            for p in rule.get("http", {}).get("paths", []):
                pp, kind = p["path"], p.get("pathType", "Prefix")
                if kind == "Exact":
                    if path == pp:
                        return ing, p["backend"]["service"]["name"]
                    continue
                if prefix_match(pp, path) and len(pp.rstrip("/")) > best_len:
                    best, best_len = (ing, p["backend"]["service"]["name"]), len(pp.rstrip("/"))
    return best


def ingress_app(docs, ing, svc_name):
    if ing is None:
        return None
    ann = ing["metadata"].get("annotations") or {}
    if "0.0.0.0/0" in ann.get("nginx.ingress.kubernetes.io/denylist-source-range", ""):
        return None
    return app_behind(docs, svc_name)


def check_ingress(docs, overlay, cms, errors):
    cloud_host = urlparse(cms.get("CHATONS_CLOUD_PUBLIC_URL", "")).hostname
    rt_url = urlparse(cms.get("CHATONS_REALTIME_PUBLIC_URL", ""))
    run_url = urlparse(cms.get("CHATONS_RUNTIME_PUBLIC_URL", ""))
    hosts = sorted({r["host"] for i in by_kind(docs, "Ingress") for r in i["spec"].get("rules", [])})
    if len(hosts) < 3:
        errors.append(f"[{overlay}] expected cloud., api. and realtime. hosts, found {hosts}")

    def expect(host, path, app):
        got = ingress_app(docs, *ingress_route(docs, host, path))
        if got != app:
            errors.append(f"[{overlay}] ingress {host}{path} reaches {got or 'nothing'}, expected {app or 'nothing'}")
    expect(cloud_host, "/", "cloud-api")
    expect(cloud_host, "/.well-known/openid-configuration", "cloud-api")
    expect(run_url.hostname, run_url.path.rstrip("/") + "/v1/runtime/sessions", "runtime-headless")
    expect(rt_url.hostname, rt_url.path or "/ws", "cloud-realtime")
    expect(rt_url.hostname, "/v1/realtime/token", "cloud-realtime")
    for h in hosts:
        for owner, paths in INTERNAL.items():
            for p in paths:
                if ingress_app(docs, *ingress_route(docs, h, p)) == owner:
                    errors.append(f"[{overlay}] ingress {h}{p} reaches {owner}, which serves it internally")
    for ing in by_kind(docs, "Ingress"):
        ann = ing["metadata"].get("annotations") or {}
        for rule in ing["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                app = ingress_app(docs, ing, p["backend"]["service"]["name"])
                if app == "cloud-realtime" and (p.get("pathType") != "Exact" or p["path"] not in PUBLIC_REALTIME):
                    errors.append(f"[{overlay}] Ingress/{ing['metadata']['name']} routes {p['path']} to cloud-realtime")
                if app and "nginx.ingress.kubernetes.io/limit-rps" not in ann:
                    errors.append(f"[{overlay}] Ingress/{ing['metadata']['name']} has no rate limit")
        if any("snippet" in k for k in ann):
            errors.append(f"[{overlay}] Ingress/{ing['metadata']['name']} uses a snippet annotation")
    rt_ing, _ = ingress_route(docs, rt_url.hostname, "/ws")
    if rt_ing is not None and int((rt_ing["metadata"].get("annotations") or {}).get(
            "nginx.ingress.kubernetes.io/proxy-read-timeout", "60")) < 600:
        errors.append(f"[{overlay}] websocket Ingress needs a long proxy-read-timeout")
    if overlay.startswith("production"):
        dns = {n for c in by_kind(docs, "Certificate") for n in c["spec"].get("dnsNames", [])}
        for ing in by_kind(docs, "Ingress"):
            tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
            for r in ing["spec"]["rules"]:
                if r["host"] not in tls_hosts or r["host"] not in dns:
                    errors.append(f"[{overlay}] host {r['host']} of Ingress/{ing['metadata']['name']} is not covered by TLS")


def edge_kind(docs):
    """'gateway', 'ingress' or None: which public edge these manifests use."""
    if by_kind(docs, "Gateway") and not by_kind(docs, "Ingress"):
        return "gateway"
    if by_kind(docs, "Ingress") and not by_kind(docs, "Gateway"):
        return "ingress"
    return None


def check_edge(docs, overlay, cms, errors):
    kind = edge_kind(docs)
    if kind == "gateway":
        check_gateway(docs, overlay, cms, errors)
    elif kind == "ingress":
        check_ingress(docs, overlay, cms, errors)
    else:
        errors.append(f"[{overlay}] expected exactly one edge: a Gateway with HTTPRoutes, or (legacy) Ingresses")
