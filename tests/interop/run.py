#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vhostkit interop suite runner: real frontends (QEMU + Linux guest, DPDK
testpmd virtio-user) against apps/vhk-fwd and apps/vhk-rng.

  run.py --build-dir BUILD --case NAME   run one case, write BUILD/interop-results/NAME.json
  run.py --build-dir BUILD --all         run every case in turn, then the report
  run.py --build-dir BUILD --report      write the matrix to BUILD/interop.md
  run.py ... --report --write-docs       ... and to docs/interop.md (the published matrix)
  run.py --list                          print the case names

Exit status: 0 pass, 1 fail, 77 skip: a program the case needs is not
installed, or the guest kernel cannot be fetched; one line says which. Under
CI (environment variable CI set) a missing program is a failure instead.
"""
import argparse
import datetime
import os
import shutil
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import guest  # noqa: E402
import report  # noqa: E402
from common import SRC_DIR, CaseFailed, Ctx, tool_versions, write_result  # noqa: E402
from dpdk_cases import dpdk_cases  # noqa: E402
from migration_cases import migration_cases  # noqa: E402
from qemu_cases import qemu_cases  # noqa: E402

SKIP = 77


def all_cases():
    """name -> (frontend, configuration, function)."""
    cases = {}
    for name, (cfg, fn) in qemu_cases().items():
        cases[name] = ("QEMU + Linux guest", cfg, fn)
    for name, (cfg, fn) in migration_cases().items():
        cases[name] = ("QEMU + Linux guest, live migration", cfg, fn)
    for name, (cfg, fn) in dpdk_cases().items():
        cases[name] = ("DPDK testpmd virtio-user", cfg, fn)
    return cases


# Programs the cases run -> the Debian package scripts/deps.sh installs them from.
QEMU_TOOLS = {"qemu-system-x86_64": "qemu-system-x86", "cpio": "cpio", "taskset": "util-linux",
              "find": "findutils", "sort": "coreutils"}  # the last two build the initramfs
DPDK_TOOLS = {"dpdk-testpmd": "dpdk", "taskset": "util-linux", "stdbuf": "coreutils"}
# Fetching the guest kernel (only while none is cached under BUILD/interop-cache/):
# part of every Debian system, so nothing scripts/deps.sh could add.
KERNEL_TOOLS = {"apt-get": None, "apt-cache": None, "dpkg": None}


def missing_requirements(name, build_dir):
    """One line naming what case `name` needs and does not find, or None."""
    qemu = name.startswith("qemu")
    tools = dict(QEMU_TOOLS if qemu else DPDK_TOOLS)
    if qemu and not guest.kernel_cached(build_dir):
        tools.update(KERNEL_TOOLS)
    missing = sorted(t for t in tools if not shutil.which(t))
    if qemu:
        try:
            guest.busybox_path()
        except RuntimeError:
            missing.append("static busybox")
            tools["static busybox"] = "busybox-static"
    if not missing:
        return None
    pkgs = sorted({tools[t] for t in missing if tools[t]})
    text = "%s %s not installed" % (", ".join(missing), "is" if len(missing) == 1 else "are")
    if pkgs:
        text += " (scripts/deps.sh installs %s: %s)" % (
            "it" if len(missing) == 1 else "them", " ".join(pkgs))
    if any(not tools[t] for t in missing):
        text += "; the guest kernel is fetched with apt-get download (Debian's apt)"
    return text


def prepare_guest(ctx):
    """Fetch the guest kernel and build the initramfs (QEMU cases); a reason on failure."""
    try:
        ctx.guest = guest.ensure_guest(ctx.build_dir)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        return ("no guest: fetching the Debian guest kernel (apt-get download) or building "
                "the initramfs failed: %s" % str(e).strip().splitlines()[-1][:200])
    return None


def now():
    """The current UTC time for result files."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_case(build_dir, name):
    """Run one case; write its result file; return an exit status."""
    frontend, cfg, fn = all_cases()[name]
    ctx = Ctx(build_dir, name)
    why = missing_requirements(name, build_dir)
    if not why and name.startswith("qemu"):
        why = prepare_guest(ctx)
    if why:
        ctx.cleanup()
        # CI installs everything (scripts/deps.sh): anything missing is a failure there.
        ci = bool(os.environ.get("CI"))
        print("%s: %s: %s" % ("FAIL" if ci else "SKIP", name, why), flush=True)
        write_result(build_dir, {"case": name, "frontend": frontend, "configuration": cfg,
                                 "result": "FAIL" if ci else "skip", "skip_reason": why,
                                 "seconds": 0, "date": now(), "numbers": {},
                                 "checks": [{"check": "requirements", "ok": False,
                                             "detail": why}] if ci else [],
                                 "versions": {}})
        return 1 if ci else SKIP
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
    ap.add_argument("--output", help="report file (default: BUILD/interop.md)")
    ap.add_argument("--write-docs", action="store_true",
                    help="also write the report to docs/interop.md of the source tree")
    args = ap.parse_args()
    if args.list:
        print("\n".join(all_cases()))
        return 0
    if args.case:
        if args.case not in all_cases():
            print("unknown case %s; --list shows them" % args.case)
            return 2
        return run_case(args.build_dir, args.case)
    outputs = [args.output or os.path.join(os.path.abspath(args.build_dir), "interop.md")]
    if args.write_docs:
        outputs.append(os.path.join(SRC_DIR, "docs", "interop.md"))
    if args.all:
        rc = 0
        for name in all_cases():
            r = run_case(args.build_dir, name)
            rc = rc or (r if r != SKIP else 0)
        report.generate(args.build_dir, outputs, list(all_cases()))
        return rc
    if args.report:  # a generator: fails only when there is nothing to report
        return 1 if report.generate(args.build_dir, outputs, list(all_cases())) < 0 else 0
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
