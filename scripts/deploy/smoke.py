#!/usr/bin/env python3
"""Post-deploy smoke test: the public URLs answer as a desktop expects them to.

usage: smoke.py --cloud URL --realtime WS_URL [--runtime URL] [--version V] [--edge]
                [--attempts N]

Checks (each retried for a while: a fresh rollout may need seconds to be routed):
  health     GET <cloud>/healthz is 200 {"status":"ok","service":"cloud-api"} (and reports
             --version when given: the deployed commit).
  discovery  GET <cloud>/.well-known/openid-configuration is 200 with this issuer, and its
             jwks_uri serves at least one key.
  runtime    POST <runtime>/v1/runtime/sessions/smoke/commands without a token is a JSON 401
             from runtime-headless
             (routed, and refusing an unauthenticated caller).
  websocket  GET <realtime>?token=… with the websocket upgrade headers is answered 101
             Switching Protocols by cloud-realtime (then closed: the token is not valid).
  edge       (--edge: through the public edge only) /v1/internal/runtime/access and /metrics
             do not reach an application.
Exits 0 when every check passed, 1 otherwise (one line per failure). Standard library only,
so it runs on a bare CI runner.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse


def get(url: str, timeout: float = 10, json_body: bytes | None = None):
    """(status, headers, body bytes) without raising on HTTP errors; a POST with `json_body`."""
    headers = {"User-Agent": "chatons-smoke/1"}
    if json_body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=json_body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def check_health(cloud: str, version: str | None) -> str | None:
    status, _, body = get(cloud.rstrip("/") + "/healthz")
    if status != 200:
        return f"health: GET /healthz -> {status}"
    data = json.loads(body)
    if data.get("status") != "ok" or data.get("service") != "cloud-api":
        return f"health: unexpected body {data}"
    if version and data.get("version") != version:
        return f"health: version {data.get('version')!r}, expected {version!r} (old pods still serving?)"
    return None


def check_discovery(cloud: str) -> str | None:
    status, _, body = get(cloud.rstrip("/") + "/.well-known/openid-configuration")
    if status != 200:
        return f"discovery: -> {status}"
    doc = json.loads(body)
    if doc.get("issuer", "").rstrip("/") != cloud.rstrip("/"):
        return f"discovery: issuer {doc.get('issuer')!r} is not {cloud!r}"
    status, _, body = get(doc.get("jwks_uri", ""))
    if status != 200 or not json.loads(body).get("keys"):
        return f"discovery: jwks_uri {doc.get('jwks_uri')} -> {status} without keys"
    return None


def check_runtime(runtime: str) -> str | None:
    # A command needs the user's token whatever the session (a snapshot may be read without one).
    status, _, body = get(runtime.rstrip("/") + "/v1/runtime/sessions/smoke/commands", json_body=b"{}")
    try:
        err = json.loads(body)
    except ValueError:
        err = {}
    if status != 401 or "error" not in err or "message" not in err:
        return f"runtime: POST /v1/runtime/sessions/smoke/commands -> {status} {body[:200]!r}, expected runtime-headless's JSON 401"
    return None


def check_websocket(realtime: str) -> str | None:
    u = urlparse(realtime)
    secure = u.scheme == "wss"
    port = u.port or (443 if secure else 80)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (u.path or "/ws") + "?token=smoke-invalid-token"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: chatons-smoke/1\r\n\r\n"
    )
    with socket.create_connection((u.hostname, port), timeout=10) as raw:
        sock = ssl.create_default_context().wrap_socket(raw, server_hostname=u.hostname) if secure else raw
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 101 " not in status_line + " ":
        return f"websocket: handshake answered {status_line!r}, expected 101 Switching Protocols"
    if b"sec-websocket-accept:" not in head.lower():
        return "websocket: 101 without Sec-WebSocket-Accept"
    return None


def check_edge(cloud: str) -> str | None:
    for path in ("/v1/internal/runtime/access", "/metrics"):
        status, _, body = get(cloud.rstrip("/") + path)
        if path == "/metrics" and status == 200 and b"chatons_" in body:
            return f"edge: {path} is served publicly"
        if path.startswith("/v1/internal") and status in (401, 405):
            try:
                if "error" in json.loads(body):
                    return f"edge: {path} reaches cloud-api ({status})"
            except ValueError:
                pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cloud", required=True)
    ap.add_argument("--realtime", required=True)
    ap.add_argument("--runtime")
    ap.add_argument("--version")
    ap.add_argument("--edge", action="store_true")
    ap.add_argument("--attempts", type=int, default=12)
    ap.add_argument("--delay", type=float, default=5)
    args = ap.parse_args()
    checks = [
        ("health", lambda: check_health(args.cloud, args.version)),
        ("discovery", lambda: check_discovery(args.cloud)),
        ("runtime", lambda: check_runtime(args.runtime or args.cloud)),
        ("websocket", lambda: check_websocket(args.realtime)),
    ]
    if args.edge:
        checks.append(("edge", lambda: check_edge(args.cloud)))
    failures = []
    for name, check in checks:
        problem = None
        for attempt in range(1, args.attempts + 1):
            try:
                problem = check()
            except (OSError, ValueError) as e:
                problem = f"{name}: {e}"
            if problem is None:
                print(f"smoke: {name} ok")
                break
            if attempt < args.attempts:
                time.sleep(args.delay)
        if problem:
            failures.append(problem)
    for f in failures:
        print(f"SMOKE FAILED: {f}", file=sys.stderr)
    print(f"smoke: {len(checks) - len(failures)}/{len(checks)} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
