#!/usr/bin/env python3
"""scripts/deploy/smoke.py must pass against the real services and fail when something it
guards is wrong. Starts cloud-api, cloud-realtime and runtime-headless (in-memory defaults,
free local ports), then runs the smoke test:
  1. against them as they are: must pass (health, discovery, runtime route, websocket 101);
  2. with --edge: must fail, since the bare cloud-api answers /v1/internal/* itself;
  3. with an expected version the services do not report: must fail;
  4. with the realtime and runtime URLs swapped: must fail.
usage: smoke_selftest.py <bin dir>
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(ROOT, "scripts/deploy/smoke.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    bin_dir = sys.argv[1]
    token = "smoke-selftest-" + os.urandom(12).hex()
    data = tempfile.mkdtemp(prefix="smoke-")
    ports = {b: free_port() for b in ("cloud-api", "cloud-realtime", "runtime-headless")}
    api = f"http://127.0.0.1:{ports['cloud-api']}"
    base_env = {"PATH": os.environ.get("PATH", ""), "CHATONS_INTERNAL_SERVICE_TOKEN": token}
    extra = {
        "cloud-api": {"CHATONS_DATA_DIR": data, "CHATONS_CLOUD_PUBLIC_URL": api},
        "cloud-realtime": {"CHATONS_CLOUD_API_URL": api},
        "runtime-headless": {"CHATONS_RUNTIME_ROOT_DIR": data, "CHATONS_CLOUD_API_URL": api},
    }
    procs = []
    try:
        for b, port in ports.items():
            env = {**base_env, **extra[b], "PORT": str(port)}
            procs.append(subprocess.Popen([os.path.join(bin_dir, b)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for b, port in ports.items():
            for _ in range(150):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                print(f"smoke self-test: {b} did not start", file=sys.stderr)
                return 1
        rt = f"ws://127.0.0.1:{ports['cloud-realtime']}/ws"
        run = f"http://127.0.0.1:{ports['runtime-headless']}"
        def smoke(*args):
            return subprocess.run([sys.executable, SMOKE, "--attempts", "1", *args],
                                  capture_output=True, text=True)
        ok = smoke("--cloud", api, "--realtime", rt, "--runtime", run)
        print(ok.stdout, end="")
        if ok.returncode != 0:
            print(ok.stderr, file=sys.stderr)
            print("smoke self-test: the smoke test fails against healthy services", file=sys.stderr)
            return 1
        cases = [
            ("internal paths reachable (--edge on the bare service)",
             ("--cloud", api, "--realtime", rt, "--runtime", run, "--edge"), "edge:"),
            ("old version still serving", ("--cloud", api, "--realtime", rt, "--runtime", run, "--version", "0000000"), "health:"),
            ("realtime URL pointing elsewhere", ("--cloud", api, "--realtime", f"ws://127.0.0.1:{ports['runtime-headless']}/ws", "--runtime", run), "websocket:"),
            ("runtime URL pointing elsewhere", ("--cloud", api, "--realtime", rt, "--runtime", f"http://127.0.0.1:{ports['cloud-realtime']}"), "runtime:"),
        ]
        for desc, args, needle in cases:
            r = smoke(*args)
            if r.returncode == 0 or needle not in r.stderr:
                print(f"smoke self-test: '{desc}' was not caught: {r.stdout}{r.stderr}", file=sys.stderr)
                return 1
            print(f"  smoke self-test: {desc}: caught ({r.stderr.strip().splitlines()[0]})")
        return 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
