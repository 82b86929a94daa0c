#!/usr/bin/env python3
"""Soak load for scripts/soak (stdlib only; loopback only; bounded in time).

Workers, all for --seconds:
  api       2 threads: bootstrap, create a conversation, list its messages, list projects.
  realtime  20 websockets of one instance (a minimal RFC 6455 client below) and a publisher at
            ~40 events/s through the internal publish route; at the end every socket must have
            received every published event, in order, with no gap.
  runtime   1 thread: acquire a session, send a prompt, wait until the assistant's answer is in
            the snapshot, stop the session; repeat (the stand-in model streams the answer).
Any unexpected status, exception or lost event counts as an error; the run fails unless there
are none. RSS of each service is sampled every 10 s and printed; the run also fails when a
service ends more than --max-growth-pct above its RSS after the first fifth of the run.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid

errors = []
errors_lock = threading.Lock()
counts = {"api": 0, "published": 0, "turns": 0}


def error(what):
    with errors_lock:
        errors.append(what)
        if len(errors) <= 20:
            print(f"soak error: {what}", file=sys.stderr)


def request(base, method, path, body=None, token=None, expect=(200, 201, 202, 204)):
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    if resp.status not in expect:
        raise RuntimeError(f"{method} {path}: {resp.status} {text[:300]}")
    return json.loads(text) if text else None


class WebSocket:
    """Just enough of a websocket client: handshake, read text frames, answer pings."""

    def __init__(self, hostport, path):
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake: connection closed")
            head += chunk
        status_line = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status_line:
            raise RuntimeError(f"websocket handshake: {status_line!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_json(self):
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise EOFError(f"closed by the server: {code} {payload[2:]!r}")
            elif opcode == 0x1:
                return json.loads(payload)

    def close(self):
        try:
            self._send(0x8, struct.pack("!H", 1000))
            self.sock.close()
        except OSError:
            pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--realtime", required=True)
    p.add_argument("--runtime", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--service-token", required=True)
    p.add_argument("--pids", required=True)
    p.add_argument("--max-growth-pct", type=float, default=25.0)
    a = p.parse_args()
    pids = dict(kv.split("=") for kv in a.pids.split(","))
    deadline = time.monotonic() + a.seconds

    signup = request(a.api, "POST", "/v1/web/signup", {
        "email": f"soak-{uuid.uuid4().hex}@example.com", "displayName": "Soak",
        "password": "correct horse battery staple"})
    token = signup["session"]["accessToken"]
    boot = request(a.api, "GET", "/v1/bootstrap", token=token)
    project = boot["projects"][0]["id"]
    org = boot["user"].get("activeOrganizationId") or boot["organizations"][0]["id"]
    request(a.api, "POST", "/v1/organization/providers", {
        "kind": "openai", "label": "Stand-in", "secret": "sk-soak", "baseUrl": a.model,
        "models": [], "defaultModel": "chatons-demo"}, token=token)
    instance = str(uuid.uuid4())
    request(a.api, "POST", "/v1/cloud-instances", {"id": instance, "name": "Soak"}, token=token)

    stop = threading.Event()

    def api_worker():
        while not stop.is_set():
            try:
                request(a.api, "GET", "/v1/bootstrap", token=token)
                conv = request(a.api, "POST", "/v1/conversations",
                               {"projectId": project, "title": "soak"}, token=token)
                cid = conv["conversation"]["id"]
                request(a.api, "GET", f"/v1/conversations/{cid}/messages", token=token)
                request(a.api, "GET", "/v1/projects?limit=20", token=token)
                with errors_lock:
                    counts["api"] += 4
            except Exception as e:  # noqa: BLE001 - every failure is a soak error
                error(f"api: {e}")
                time.sleep(0.5)

    sockets = []
    for _ in range(20):
        t = request(a.realtime if a.realtime.startswith("http") else f"http://{a.realtime}", "GET",
                    f"/v1/realtime/token?cloudInstanceId={instance}", token=token)
        ws = WebSocket(a.realtime, f"/ws?token={t['token']}")
        hello = ws.recv_json()
        if hello.get("type") != "hello":
            error(f"first frame {hello}")
        sockets.append({"ws": ws, "seqs": [], "marks": [], "start": hello.get("sequence", 0)})

    def reader(s):
        try:
            while True:
                v = s["ws"].recv_json()
                if isinstance(v.get("seq"), int):
                    s["seqs"].append(v["seq"])
                    mark = (v.get("payload") or {}).get("soak")
                    if isinstance(mark, int):
                        s["marks"].append(mark)
        except (EOFError, OSError) as e:
            if not stop.is_set():
                error(f"websocket ended early: {e}")

    def publisher():
        base = f"http://{a.realtime}"
        while not stop.is_set():
            try:
                n = counts["published"]
                request(base, "POST", "/v1/realtime/events", {
                    "cloudInstanceId": instance,
                    "event": {"id": str(uuid.uuid4()), "type": "soak.event", "ts": "",
                              "organizationId": org, "payload": {"soak": n, "pad": "x" * 200}}},
                        token=a.service_token, expect=(202,))
                with errors_lock:
                    counts["published"] += 1
            except Exception as e:  # noqa: BLE001
                error(f"publish: {e}")
            time.sleep(0.025)

    def runtime_worker():
        while not stop.is_set():
            try:
                conv = request(a.api, "POST", "/v1/conversations",
                               {"projectId": project, "title": "soak turn"}, token=token)
                cid = conv["conversation"]["id"]
                session = request(a.runtime, "POST", "/v1/runtime/sessions", {
                    "conversationId": cid, "cloudInstanceId": instance, "projectId": project},
                    token=token)
                sid = session["id"]
                answer = request(a.runtime, "POST", f"/v1/runtime/sessions/{sid}/commands",
                                 {"id": str(uuid.uuid4()), "type": "prompt", "message": "Say hello."},
                                 token=token)
                if not answer.get("success"):
                    error(f"prompt: {answer}")
                done = False
                for _ in range(300):
                    snap = request(a.runtime, "GET", f"/v1/runtime/sessions/{sid}", token=token)
                    roles = [m.get("role") for m in snap.get("messages", [])]
                    if "assistant" in roles and not (snap.get("state") or {}).get("isStreaming"):
                        done = True
                        break
                    time.sleep(0.1)
                if not done:
                    error(f"turn in {sid} did not finish within 30 s")
                request(a.runtime, "DELETE", f"/v1/runtime/sessions/{sid}", token=token)
                with errors_lock:
                    counts["turns"] += 1
            except Exception as e:  # noqa: BLE001
                error(f"runtime: {e}")
                time.sleep(0.5)

    threads = [threading.Thread(target=reader, args=(s,), daemon=True) for s in sockets]
    threads += [threading.Thread(target=api_worker, daemon=True) for _ in range(2)]
    threads += [threading.Thread(target=publisher, daemon=True),
                threading.Thread(target=runtime_worker, daemon=True)]
    for t in threads:
        t.start()

    samples = {name: [] for name in pids}
    started = time.monotonic()
    print(f"{'t (s)':>6} " + " ".join(f"{n + ' RSS KiB':>24}" for n in pids), flush=True)
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            samples[name].append((time.monotonic() - started, rss_kib(pid)))
        print(f"{time.monotonic() - started:6.0f} " + " ".join(f"{samples[n][-1][1]:>24}" for n in pids),
              flush=True)
        time.sleep(min(10, max(0, deadline - time.monotonic())))
    stop.set()
    for t in threads[len(sockets):]:
        t.join(timeout=40)
    published = counts["published"]
    time.sleep(2)
    for s in sockets:
        s["ws"].close()
    for i, s in enumerate(sockets):
        # The runtime's turns publish to the same instance: the stream must have no gap, and
        # the publisher's events must all be there, in order.
        seqs = s["seqs"]
        if seqs != list(range(s["start"] + 1, s["start"] + 1 + len(seqs))):
            error(f"socket {i}: the stream has a gap or a duplicate")
        if s["marks"] != list(range(published)):
            missing = sorted(set(range(published)) - set(s["marks"]))
            error(f"socket {i}: {len(s['marks'])} of {published} published events; missing {missing[:10]}")

    print(f"\nrequests: api {counts['api']}, events published {published} "
          f"(x{len(sockets)} sockets), runtime turns {counts['turns']}, errors {len(errors)}")
    ok = not errors and counts["turns"] > 0 and published > 0
    for name, series in samples.items():
        warm = series[max(0, len(series) // 5)][1]
        last = series[-1][1]
        peak = max(v for _, v in series)
        growth = 100.0 * (last - warm) / warm if warm else 0.0
        print(f"{name:>17}: RSS after warm-up {warm} KiB, end {last} KiB, peak {peak} KiB, "
              f"growth {growth:+.1f} %")
        if growth > a.max_growth_pct:
            print(f"{name}: RSS grew {growth:.1f} % (> {a.max_growth_pct} %)", file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
