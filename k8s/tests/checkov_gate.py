#!/usr/bin/env python3
"""Runs checkov on one rendered overlay and fails on any finding not accepted in
k8s/checkov-skips.yaml, or on an accepted skip that matched nothing (stale).

usage: checkov_gate.py <checkov executable> <overlay name> <rendered.yaml> <skips.yaml>
"""
import json
import subprocess
import sys

import yaml


def main() -> int:
    checkov, overlay, rendered, skips_path = sys.argv[1:5]
    with open(skips_path) as f:
        skips = yaml.safe_load(f)["skips"]
    for s in skips:
        for field in ("check", "overlays", "resources", "reason"):
            if not s.get(field):
                print(f"checkov-skips: entry {s!r} lacks {field}", file=sys.stderr)
                return 1
    accepted = {
        (s["check"], r) for s in skips if overlay in s["overlays"] for r in s["resources"]
    }
    proc = subprocess.run(
        [checkov, "-f", rendered, "--framework", "kubernetes", "--skip-download",
         "--quiet", "-o", "json"],
        capture_output=True, text=True,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        print("checkov did not produce a JSON report", file=sys.stderr)
        return 1
    reports = report if isinstance(report, list) else [report]
    failed, passed, parse_errors = [], 0, 0
    for r in reports:
        failed += r.get("results", {}).get("failed_checks", [])
        passed += r.get("summary", {}).get("passed", 0)
        parse_errors += r.get("summary", {}).get("parsing_errors", 0)
    if parse_errors or passed == 0:
        print(f"checkov: {parse_errors} parsing errors, {passed} passed checks", file=sys.stderr)
        return 1
    seen, unexpected = set(), []
    for f in failed:
        key = (f["check_id"], f["resource"])
        if key in accepted:
            seen.add(key)
        else:
            unexpected.append(f"{f['check_id']} {f['resource']}: {f.get('check_name', '')}")
    stale = sorted(accepted - seen)
    print(f"checkov [{overlay}]: {passed} passed, {len(failed)} failed, "
          f"{len(seen)} of them accepted in {skips_path}")
    for u in unexpected:
        print(f"  NOT ACCEPTED: {u}", file=sys.stderr)
    for c, r in stale:
        print(f"  STALE SKIP (no such finding any more): {c} {r}", file=sys.stderr)
    return 1 if unexpected or stale else 0


if __name__ == "__main__":
    sys.exit(main())
