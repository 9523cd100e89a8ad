#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vhostkit interop suite runner: real frontends (QEMU + Linux guest, DPDK
testpmd virtio-user) against apps/vhk-fwd.

  run.py --build-dir BUILD --case NAME   run one case, write BUILD/interop-results/NAME.json
  run.py --build-dir BUILD --all         run every case in turn, then the report
  run.py --build-dir BUILD --report      regenerate docs/interop.md from the results
  run.py --list                          print the case names

Exit status: 0 pass, 1 fail, 77 skip (a frontend is not installed).
"""
import argparse
import datetime
import os
import shutil
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402
from common import CaseFailed, Ctx, tool_versions, write_result  # noqa: E402
from dpdk_cases import dpdk_cases  # noqa: E402
from qemu_cases import qemu_cases  # noqa: E402

SKIP = 77


def all_cases():
    """name -> (frontend, configuration, function)."""
    cases = {}
    for name, (cfg, fn) in qemu_cases().items():
        cases[name] = ("QEMU + Linux guest", cfg, fn)
    for name, (cfg, fn) in dpdk_cases().items():
        cases[name] = ("DPDK testpmd virtio-user", cfg, fn)
    return cases


def missing_tool(name):
    """The frontend program this case needs, if it is not installed."""
    need = "qemu-system-x86_64" if name.startswith("qemu") else "dpdk-testpmd"
    return None if shutil.which(need) else need


def now():
    """The current UTC time for result files."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_case(build_dir, name):
    """Run one case; write its result file; return an exit status."""
    frontend, cfg, fn = all_cases()[name]
    tool = missing_tool(name)
    ctx = Ctx(build_dir, name)
    if tool and os.environ.get("CI"):
        # CI installs every frontend (scripts/deps.sh): a missing one is a failure there.
        print("FAIL: %s is not installed in CI (scripts/deps.sh should have installed it)" % tool)
        return 1
    if tool:
        print("SKIP: %s is not installed (scripts/deps.sh installs it)" % tool)
        ctx.cleanup()
        write_result(build_dir, {"case": name, "frontend": frontend, "configuration": cfg,
                                 "result": "skip (%s missing)" % tool, "seconds": 0,
                                 "date": now(), "numbers": {}, "checks": [], "versions": {}})
        return SKIP
    t0 = time.monotonic()
    error = None
    try:
        fn(ctx)
    except CaseFailed as e:
        error = str(e)
    except Exception:  # a bug in the case itself still yields a result file
        error = traceback.format_exc()
    finally:
        ctx.cleanup()
    if error:
        print("ERROR: " + error, flush=True)
        ctx.checks.append({"check": "case ran to the end", "ok": False, "detail": error[-500:]})
    ok = bool(ctx.checks) and all(c["ok"] for c in ctx.checks)
    res = {
        "case": name, "frontend": frontend, "configuration": cfg,
        "result": "pass" if ok else "FAIL", "seconds": round(time.monotonic() - t0, 1),
        "date": now(),
        "numbers": ctx.numbers, "checks": ctx.checks,
        "versions": tool_versions(ctx.numbers.get("kernel")),
    }
    write_result(build_dir, res)
    print("%s: %s (%.1f s)" % (name, res["result"], res["seconds"]), flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="vhostkit interop suite")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--case")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--output", help="report file (default: docs/interop.md of the source tree)")
    args = ap.parse_args()
    if args.list:
        print("\n".join(all_cases()))
        return 0
    if args.case:
        if args.case not in all_cases():
            print("unknown case %s; --list shows them" % args.case)
            return 2
        return run_case(args.build_dir, args.case)
    if args.all:
        rc = 0
        for name in all_cases():
            r = run_case(args.build_dir, name)
            rc = rc or (r if r != SKIP else 0)
        report.generate(args.build_dir, args.output, list(all_cases()))
        return rc
    if args.report:  # a generator: fails only when there is nothing to report
        return 1 if report.generate(args.build_dir, args.output, list(all_cases())) < 0 else 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
