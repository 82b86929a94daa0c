#!/usr/bin/env python3
"""Renders bench/realtime results JSON as the realtime section of bench/RESULTS.md (only the
text between the realtime markers is replaced; the file is created when missing).

    report.py results.json RESULTS.md|-
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys

BEGIN, END = "<!-- realtime:begin -->", "<!-- realtime:end -->"
NAMES = {"chatons": "cloud-realtime (Rust)", "socketio": "socket.io 4.8 + redis-adapter 8"}


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024} GiB RAM"
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    redis_v = next((w.split("=")[1] for w in redis if w.startswith("v=")), "?")
    return f"{os.cpu_count()} × {cpu}{mem}; Linux {platform.release()}; node {node}; Redis {redis_v}"


def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def phase(r, target, name):
    t = r["targets"].get(target)
    if not t:
        return None
    return next((p for p in t["fanout"]["phases"] if p["phase"] == name), None)


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def targets(r):
    """The issue-17 targets, ours against the peer, from this run."""
    rows = []
    mx, mxp = phase(r, "chatons", "max"), phase(r, "socketio", "max")
    rt, rtp = phase(r, "chatons", "rate"), phase(r, "socketio", "rate")
    idle = (r["targets"].get("chatons") or {}).get("idle")

    def row(what, ours, peer, unit, goal, better_high, digits=1):
        q = ratio(ours, peer)
        met = None if q is None else (q >= goal if better_high else q <= goal)
        rows.append({"what": what, "ours": ours, "peer": peer, "unit": unit, "ratio": q,
                     "goal": (f"≥ {goal:g}×" if better_high else f"≤ {goal:g}×"), "met": met, "digits": digits})

    row("delivered msgs/s at 1,000 subscribers (max throughput)",
        mx and mx["deliveredPerSecond"], mxp and mxp["deliveredPerSecond"], "msgs/s", 4, True, 0)
    row("server CPU per delivery (max throughput)",
        mx and mx["serverCpuUsPerDelivery"], mxp and mxp["serverCpuUsPerDelivery"], "µs", 0.2, False, 2)
    row("server CPU per delivery (fixed rate)",
        rt and rt["serverCpuUsPerDelivery"], rtp and rtp["serverCpuUsPerDelivery"], "µs", 0.2, False, 2)
    row("p99 latency at a fixed rate",
        rt and rt["p99ms"], rtp and rtp["p99ms"], "ms", 0.2, False, 2)
    if idle and idle.get("kibPerConnection") is not None:
        peer_idle = (r["targets"].get("socketio") or {}).get("idle") or {}
        rows.append({"what": f"RSS per idle connection at {idle['connections']:,}", "ours": idle["kibPerConnection"],
                     "peer": peer_idle.get("kibPerConnection"), "unit": "KiB",
                     "ratio": ratio(idle["kibPerConnection"], peer_idle.get("kibPerConnection")),
                     "goal": "≤ 6 KiB", "met": idle["kibPerConnection"] <= 6, "digits": 2})
    return rows


def render(r):
    c = r["config"]
    out = [BEGIN, "## Realtime fan-out (`bench/realtime/run`)", ""]
    out.append(f"Run {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {machine()}.")
    out.append(
        f"Two replicas per system on one private Redis, {c['subs']:,} subscribers of one instance/room spread over "
        f"both replicas, publishes over HTTP alternating between replicas ({c['inflight']} in flight in the max phase), "
        f"~200-byte events, clients in {c['workers']} node processes (`ws` for cloud-realtime, `socket.io-client` "
        "websocket-only for socket.io). Latency = publish call → client receipt, measured in the publishing process. "
        "Server CPU = both replicas' user+system time (Redis excluded, shown apart); client CPU = the client "
        "processes' time. Everything shares the 2 cores, so absolute numbers include client load; compare the columns."
    )
    try:
        load = open("/proc/loadavg").read().split()[:3]
        out.append(
            f"Load average when the table was written: {' / '.join(load)} (1/5/15 min). Other work on the same "
            "cores inflates latency and lowers msgs/s for both systems alike; CPU µs per delivery and RSS per "
            "connection are the figures least affected."
        )
    except OSError:
        pass
    out.append("")
    rows = targets(r)
    if any(x["ours"] is not None for x in rows):
        out.append("| target (issue 17) | cloud-realtime | socket.io | ratio | goal | met |")
        out.append("|---|---:|---:|---:|---|---|")
        for x in rows:
            met = "—" if x["met"] is None else ("**yes**" if x["met"] else "**no**")
            out.append(f"| {x['what']} | {fmt(x['ours'], x['digits'])} {x['unit']} | {fmt(x['peer'], x['digits'])} {x['unit']} | "
                       f"{fmt(x['ratio'], 3)} | {x['goal']} | {met} |")
        out.append("")
    out.append("| system | phase | msgs × subs | delivered | delivered msgs/s | p50 ms | p99 ms | server CPU µs / delivery | client CPU µs / delivery | Redis CPU s | disconnects |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, t in r["targets"].items():
        for p in t["fanout"]["phases"]:
            if p["phase"] == "max":
                label = "max throughput"
            else:
                label = f"fixed {p.get('rate') or c['rate']} msgs/s" + (" (sweep)" if p["phase"].startswith("sweep") else "")
            out.append(
                f"| {NAMES.get(key, key)} | {label} | {p['messages']:,} × {t['fanout']['connected']:,} | "
                f"{p['delivered']:,} / {p['expected']:,} | {fmt(p['deliveredPerSecond'], 0)} | {fmt(p['p50ms'], 2)} | "
                f"{fmt(p['p99ms'], 2)} | {fmt(p['serverCpuUsPerDelivery'], 2)} | {fmt(p.get('clientCpuUsPerDelivery'), 2)} | "
                f"{fmt(p['redisCpuSeconds'], 2)} | {p['disconnects']} |"
            )
    out.append("")
    out.append("| system | idle connections | RSS before | RSS after | RSS per idle connection |")
    out.append("|---|---|---|---|---|")
    for key, t in r["targets"].items():
        i = t["idle"]
        if not i:
            continue
        out.append(
            f"| {NAMES.get(key, key)} | {i['connections']:,} ({i['failed']} failed) | {i['rssBeforeKib'] / 1024:,.1f} MiB | "
            f"{i['rssAfterKib'] / 1024:,.1f} MiB | {fmt(i['kibPerConnection'], 2)} KiB |"
        )
    out.append("")
    out.append(END)
    return "\n".join(out)


def main():
    results = json.load(open(sys.argv[1]))
    section = render(results)
    dest = sys.argv[2]
    if dest == "-":
        print(section)
        return
    text = open(dest).read() if os.path.exists(dest) else "# Benchmark results\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(dest, "w").write(text)
    print(section)


if __name__ == "__main__":
    main()
