#!/usr/bin/env python3
"""Password-login load for cloud-api (stdlib only).

Phases, all against one running cloud-api:
  1. setup (untimed): ACCOUNTS sign-ups, each from its own forwarded client address so the
     per-IP sign-up limit does not interfere (cloud-api runs with CHATONS_TRUSTED_PROXIES set to
     loopback); one probe user whose access token the probe uses.
  2. idle probe: GET /v1/account every PROBE_INTERVAL for PROBE_SECONDS, nothing else running.
  3. login load: CONCURRENCY workers send POST /v1/web/login for LOGIN_SECONDS, cycling through
     the accounts (each account is used at most a few times, under the per-account limit) and a
     new forwarded address per request; the probe keeps running beside them.

Prints one JSON object: logins/s, login latency percentiles, probe latency idle and under load,
server CPU per login (utime+stime of SERVER_PID over the load phase).
"""

import http.client
import json
import os
import threading
import time

HOST = os.environ.get("TARGET_HOST", "127.0.0.1")
PORT = int(os.environ["TARGET_PORT"])
SERVER_PID = int(os.environ["SERVER_PID"])
ACCOUNTS = int(os.environ.get("ACCOUNTS", "300"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "8"))
LOGIN_SECONDS = float(os.environ.get("LOGIN_SECONDS", "10"))
PROBE_SECONDS = float(os.environ.get("PROBE_SECONDS", "5"))
PROBE_INTERVAL = float(os.environ.get("PROBE_INTERVAL", "0.02"))
PASSWORD = "correct horse battery staple"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Client:
    """One keep-alive connection."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, PORT, timeout=30)

    def call(self, method, path, body=None, headers=None):
        h = {"content-type": "application/json"}
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=h)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
            raise
        return resp.status, raw


def forwarded(n):
    # TEST-NET and private ranges are fine here: only the limiter keys on them.
    return {"x-forwarded-for": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"}


def setup():
    c = Client()
    emails = []
    run = os.urandom(4).hex()
    for i in range(ACCOUNTS + 1):
        email = f"login-{run}-{i}@bench.example"
        status, raw = c.call(
            "POST",
            "/v1/web/signup",
            {"email": email, "displayName": "Bench", "password": PASSWORD},
            forwarded(1_000_000 + i),
        )
        if status != 201:
            raise SystemExit(f"signup {i}: HTTP {status} {raw[:200]!r}")
        if i == ACCOUNTS:
            probe_token = json.loads(raw)["session"]["accessToken"]
        else:
            emails.append(email)
    return emails, probe_token


def probe(token, stop, out):
    c = Client()
    while not stop.is_set():
        t0 = time.perf_counter()
        status, _ = c.call("GET", "/v1/account", headers={"authorization": f"Bearer {token}"})
        out.append(((time.perf_counter() - t0) * 1000, status))
        time.sleep(PROBE_INTERVAL)


def main():
    emails, token = setup()

    stop = threading.Event()
    idle = []
    t = threading.Thread(target=probe, args=(token, stop, idle))
    t.start()
    time.sleep(PROBE_SECONDS)
    stop.set()
    t.join()

    stop = threading.Event()
    loaded = []
    pt = threading.Thread(target=probe, args=(token, stop, loaded))
    lock = threading.Lock()
    counter = [0]
    latencies, statuses = [], {}
    deadline = [0.0]

    def worker():
        c = Client()
        while time.perf_counter() < deadline[0]:
            with lock:
                n = counter[0]
                counter[0] += 1
            email = emails[n % len(emails)]
            t0 = time.perf_counter()
            status, _ = c.call(
                "POST", "/v1/web/login", {"email": email, "password": PASSWORD}, forwarded(n)
            )
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(ms)

    cpu0 = cpu_ticks(SERVER_PID)
    start = time.perf_counter()
    deadline[0] = start + LOGIN_SECONDS
    workers = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    pt.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    cpu1 = cpu_ticks(SERVER_PID)
    stop.set()
    pt.join()

    ok = len(latencies)
    cpu_ms = (cpu1 - cpu0) / CLK_TCK * 1000
    cores = os.cpu_count() or 1

    def probe_stats(samples):
        ms = [m for m, s in samples if s == 200]
        return {
            "n": len(samples),
            "errors": len(samples) - len(ms),
            "p50": percentile(ms, 50),
            "p99": percentile(ms, 99),
            "max": max(ms) if ms else None,
        }

    print(
        json.dumps(
            {
                "accounts": ACCOUNTS,
                "concurrency": CONCURRENCY,
                "seconds": round(wall, 2),
                "logins_ok": ok,
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "logins_per_s": round(ok / wall, 1),
                "logins_per_s_per_core": round(ok / wall / cores, 1),
                "cores": cores,
                "login_p50": percentile(latencies, 50),
                "login_p99": percentile(latencies, 99),
                "server_cpu_ms_per_login": round(cpu_ms / ok, 2) if ok else None,
                "probe_idle": probe_stats(idle),
                "probe_under_load": probe_stats(loaded),
            }
        )
    )


if __name__ == "__main__":
    main()
