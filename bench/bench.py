#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""vhostkit benchmark driver (called by bench/run after scripts/deps.sh).

DPDK testpmd with net_virtio_user is the frontend; the backend is, in turn,
(A) DPDK testpmd with net_vhost and (B) apps/vhk-fwd. Runs alternate
A/B/A/B per row. Per run: the frontend's packets per second (its periodic
NIC statistics, steady-state periods only) and the backend's busy cycles per
packet (testpmd --record-core-cycles / vhk-fwd's busy_cycles_per_packet).
Every process is started in its own session, recorded, and stopped by pid;
DPDK run files under /var/run/dpdk/<prefix> are removed.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))

import perfdoc  # noqa: E402
from common import (CaseFailed, fwd_result, read_log, stop_process, wait_for,  # noqa: E402
                    wait_socket)
from dpdk_cases import testpmd_wait_forwarding  # noqa: E402

SIZES = (64, 1518)
TARGET = {64: 0.67, 1518: 0.80}  # vhostkit / DPDK busy cycles per packet
STATS_PERIOD = 1                 # seconds between the frontend's NIC statistics
WARMUP = 0.5                     # seconds after the backend starts before a period counts
START_DELAY = 1.0                # vhk-fwd txonly / tx-first: wait for the frontend to poll
TX_FIRST_BURSTS = 32             # loop rows: the backend starts the loop with 32 bursts (DTS plan)
# Where DPDK's EAL keeps a process's run files (eal_create_runtime_dir).
DPDK_RUN_DIR = os.path.join("/var/run" if os.geteuid() == 0 else
                            os.environ.get("XDG_RUNTIME_DIR", "/tmp"), "dpdk")
EAL_COMMON = ["--no-huge", "-m", "1024", "--no-pci"]
APP_COMMON = ["--nb-cores=1", "--total-num-mbufs=16384", "--burst=32", "--no-flush-rx"]
# kind -> (frontend mode, backend mode, which frontend rate is the row's Mpps)
KINDS = {
    "loop": ("mac", "mac", "rx"),
    "g2h": ("txonly", "rxonly", "tx"),   # guest (frontend) transmits, backend receives
    "h2g": ("rxonly", "txonly", "rx"),   # backend transmits, guest (frontend) receives
}
BACKENDS = ("dpdk", "vhk")


class RunError(Exception):
    """One run could not be measured."""


class Row:
    """One table row: traffic kind, frame size, ring layout, virtio-user flags."""

    def __init__(self, kind, size, ring, in_order, mrg):
        self.kind, self.size, self.ring, self.in_order, self.mrg = kind, size, ring, in_order, mrg
        self.id = "%s-%d-%s-io%d-mrg%d" % (kind, size, ring, in_order, mrg)

    def vdev_flags(self):
        """virtio-user devargs; in_order is always explicit (its default is 1)."""
        return ",packed_vq=%d,in_order=%d,mrg_rxbuf=%d" % (
            self.ring == "packed", self.in_order, self.mrg)


def all_rows():
    """Every row, in table order: loopback rows, then the one-direction rows."""
    rows = []
    for size in SIZES:
        for ring in ("split", "packed"):
            for mrg in (0, 1):
                rows.append(Row("loop", size, ring, 0, mrg))
        for mrg in (0, 1):
            rows.append(Row("loop", size, "packed", 1, mrg))
    for kind in ("g2h", "h2g"):
        for size in SIZES:
            for ring in ("split", "packed"):
                rows.append(Row(kind, size, ring, 0, 0))
    return rows


class Procs:
    """Every process and DPDK prefix of this benchmark, so that cleanup (also
    after Ctrl-C) stops each by pid and removes its run files."""

    def __init__(self):
        self.procs = []
        self.prefixes = []

    def start(self, argv, log_path, stdin=subprocess.DEVNULL):
        """Start argv in its own session, output to log_path; returns the Popen."""
        with open(log_path, "wb") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=stdin,
                                 start_new_session=True)
        p.log_path = log_path
        p.argv = argv
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGINT, timeout=15):
        """Signal one process by pid and reap it; SIGKILL after timeout."""
        stop_process(p, sig, timeout)
        if p.stdin:
            try:
                p.stdin.close()
            except OSError:
                pass
        return p.returncode

    def prefix(self, name):
        """A fresh DPDK --file-prefix, removed at cleanup."""
        pre = "vhk-bench-%d-%s" % (os.getpid(), name)
        self.prefixes.append(pre)
        return pre

    def cleanup(self):
        """Stop whatever still runs (by pid) and remove the DPDK run files."""
        for p in self.procs:
            self.stop(p, signal.SIGINT, timeout=5)
        self.procs = []
        for pre in self.prefixes:
            d = os.path.join(DPDK_RUN_DIR, pre)
            if os.path.isdir(d):
                subprocess.run(["rm", "-rf", "--", d], check=False)
        self.prefixes = []


class PeriodReader:
    """Timestamps the frontend's periodic 'Throughput (since last show)' lines
    as they appear in its (line-buffered) log."""

    PPS = re.compile(r"Rx-pps:\s+(\d+).*?\n\s*Tx-pps:\s+(\d+)", re.S)

    def __init__(self, p):
        self.p, self.seen, self.periods = p, 0, []

    def poll(self):
        """Record every period printed since the last call."""
        found = self.PPS.findall(read_log(self.p))
        now = time.monotonic()
        for rx, tx in found[self.seen:]:
            self.periods.append((now, int(rx), int(tx)))
        self.seen = len(found)

    def sleep(self, seconds):
        """Sleep while polling the log every 50 ms."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.05)
        self.poll()

    def inside(self, t_from, t_to):
        """(seconds, rx pps, tx pps) of every complete period between two
        consecutive statistics that lies inside [t_from, t_to]. testpmd prints
        every 1 or 2 s (its 1 s sleep against its own TSC-rate estimate), and
        each pps figure is over its own interval since the previous print."""
        return [(cur[0] - prev[0], cur[1], cur[2])
                for prev, cur in zip(self.periods, self.periods[1:])
                if prev[0] >= t_from - 0.05 and cur[0] <= t_to + 0.05]

    def rate(self, t_start, t_stop, which):
        """Time-weighted mean pps over the periods inside [t_start + WARMUP, t_stop]
        and the seconds they cover."""
        per = self.inside(t_start + WARMUP, t_stop)
        if not per:
            raise RunError("the frontend printed no statistics period inside the run")
        idx = 1 if which == "rx" else 2
        secs = sum(p[0] for p in per)
        return sum(p[0] * p[idx] for p in per) / secs, secs


def testpmd_argv(lcores, prefix, vdev, app_args):
    """A testpmd command line with the benchmark's common settings."""
    return (["dpdk-testpmd", "--lcores", lcores] + EAL_COMMON + ["--file-prefix=" + prefix,
            "--vdev", vdev, "--"] + APP_COMMON + app_args)


class Bench:
    """Runs rows and collects the per-run numbers."""

    def __init__(self, args):
        self.args = args
        self.build_dir = os.path.abspath(args.build_dir)
        self.fwd_bin = os.path.join(self.build_dir, "apps", "vhk-fwd", "vhk-fwd")
        self.log_dir = os.path.join(self.build_dir, "bench-logs")
        self.procs = Procs()
        self.n = 0
        self.tsc_mhz = None
        usage = subprocess.run([self.fwd_bin, "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, check=False).stdout
        self.start_delay = "--start-delay" in usage

    def start_backend(self, which, row, sock, tmp):
        """Start the backend on CPU 0 (server on sock)."""
        be_mode = KINDS[row.kind][1]
        if which == "dpdk":
            argv = ["stdbuf", "-oL"] + testpmd_argv(
                "0@0,1@0", self.procs.prefix("%d-be" % self.n),
                "net_vhost0,iface=%s,queues=1" % sock,
                ["-i", "--forward-mode=" + be_mode, "--record-core-cycles",
                 "--txpkts=%d" % row.size])
            # Interactive: forwarding (and the cycle count) starts with "start",
            # once the frontend is up, and ends with "stop".
            return self.procs.start(argv, os.path.join(tmp, "backend.log"), stdin=subprocess.PIPE)
        argv = ["taskset", "-c", "0", self.fwd_bin, "--socket", sock, "--mode", be_mode,
                "--json", "--burst", "32"]
        if be_mode == "txonly" or row.kind == "loop":
            argv += ["--pkt-len", str(row.size)]
            if self.start_delay:
                argv += ["--start-delay", str(START_DELAY)]
        if row.kind == "loop":
            argv += ["--tx-first=%d" % TX_FIRST_BURSTS]
        return self.procs.start(argv, os.path.join(tmp, "backend.log"))

    def start_frontend(self, row, sock, tmp):
        """Start the virtio-user testpmd on CPU 1, line-buffered for timestamps."""
        fe_mode = KINDS[row.kind][0]
        app = ["--forward-mode=" + fe_mode, "--stats-period", str(STATS_PERIOD),
               "--txpkts=%d" % row.size]
        argv = ["stdbuf", "-oL"] + testpmd_argv(
            "0@1,1@1", self.procs.prefix("%d-fe" % self.n),
            "net_virtio_user0,path=%s,queues=1%s" % (sock, row.vdev_flags()), app)
        return self.procs.start(argv, os.path.join(tmp, "frontend.log"))

    def dpdk_command(self, be, cmd):
        """Send one interactive command to the backend testpmd."""
        try:
            be.stdin.write((cmd + "\n").encode())
            be.stdin.flush()
        except OSError as e:
            raise RunError("backend testpmd gone (%s): %s" % (cmd, e)) from e

    def dpdk_result(self, be):
        """Stop forwarding; parse testpmd's CPU cycles/packet line."""
        self.dpdk_command(be, "stop")
        pat = re.compile(r"CPU cycles/packet=([0-9.]+) \(total cycles=(\d+) / total \w+ "
                         r"packets=(\d+)\) at (\d+) MHz")
        m = wait_for(lambda: pat.search(read_log(be)), 15)
        if not m:
            raise RunError("backend testpmd printed no CPU cycles/packet:\n" + read_log(be)[-1500:])
        self.dpdk_command(be, "quit")  # the caller waits for the exit
        self.tsc_mhz = int(m.group(4))
        return {"cycles_per_packet": float(m.group(1)), "busy_cycles": int(m.group(2)),
                "packets": int(m.group(3))}

    def one_run(self, which, row, tmp):
        """Measure one (row, backend) run; returns its numbers."""
        sock = os.path.join(tmp, "vhost.sock")
        be_mode, rate_of = KINDS[row.kind][1:]
        t0 = time.monotonic()
        be = self.start_backend(which, row, sock, tmp)
        try:
            wait_socket(sock, 30)
        except CaseFailed as e:
            raise RunError("%s (backend log: %s)" % (e, read_log(be)[-800:])) from e
        t_socket = time.monotonic()
        fe = self.start_frontend(row, sock, tmp)
        try:
            testpmd_wait_forwarding(None, fe, timeout=60)
        except CaseFailed as e:
            raise RunError(str(e)) from e
        reader = PeriodReader(fe)
        # testpmd prints its first statistics when its forwarding has started
        # (the "start packet forwarding" line comes before): the time base.
        wait_for(lambda: reader.poll() or reader.periods or fe.poll() is not None, 30, step=0.02)
        if not reader.periods:
            raise RunError("the frontend printed no statistics (exit status %s)" % fe.poll())
        t_fwd = time.monotonic()
        if which == "dpdk":
            # Loop rows: the backend starts the loop with 32 bursts, as the
            # DTS plan does ("start tx_first 32"), so bursts run full.
            self.dpdk_command(be, "start tx_first %d" % TX_FIRST_BURSTS
                              if row.kind == "loop" else "start")
        elif (be_mode == "txonly" or row.kind == "loop") and self.start_delay:
            reader.sleep(START_DELAY)
        t_start = time.monotonic()
        reader.sleep(WARMUP + self.args.seconds + 0.8)
        # Periods are 1-2 s long: wait (at most 3 s) until one lies inside.
        limit = time.monotonic() + 3
        while not reader.inside(t_start + WARMUP, time.monotonic()) and time.monotonic() < limit:
            reader.sleep(0.05)
        t_stop = time.monotonic()
        if fe.poll() is not None or be.poll() is not None:
            raise RunError("a process ended during the run (frontend %s, backend %s)"
                           % (fe.returncode, be.returncode))
        # Backend first: stopping the frontend first would leave a txonly
        # backend spinning on a full ring inside its counted cycles.
        t_backend_stop = time.monotonic()
        if which == "dpdk":
            res = self.dpdk_result(be)
        else:
            try:
                c = fwd_result(self.procs, be)
            except CaseFailed as e:
                raise RunError(str(e)) from e
            res = {"cycles_per_packet": c["busy_cycles_per_packet"],
                   "busy_cycles": c["busy_cycles"],
                   "packets": c["tx_packets"] if be_mode == "txonly" else c["rx_packets"]}
        t_backend_done = time.monotonic()
        self.procs.stop(fe, signal.SIGINT)
        if not wait_for(lambda: be.poll() is not None, 10):  # testpmd after "quit"
            self.procs.stop(be, signal.SIGINT)
        pps, rate_secs = reader.rate(t_start, t_stop, rate_of)
        # Where a run's wall time goes (seconds from the backend's start).
        res["phases"] = {"socket": round(t_socket - t0, 2), "forwarding": round(t_fwd - t0, 2),
                         "measured": round(t_stop - t_start, 2),
                         "backend_stopped": round(t_backend_done - t0, 2),
                         "frontend_stopped": round(time.monotonic() - t0, 2)}
        if res["packets"] <= 0 or res["cycles_per_packet"] <= 0:
            raise RunError("the backend counted no packets")
        # Seconds in which the backend forwarded (its busy share: see summarize).
        res.update(mpps=pps / 1e6, rate_seconds=round(rate_secs, 2),
                   window=t_backend_stop - t_start,
                   period_ends=[round(per[0] - t_start, 2) for per in reader.periods])
        return res

    def run(self, which, row, rep):
        """One run with its own temp dir; logs kept under BUILD/bench-logs/."""
        self.n += 1
        tmp = tempfile.mkdtemp(prefix="vhk-bench-")
        t0 = time.monotonic()
        try:
            res = self.one_run(which, row, tmp)
        except RunError as e:
            res = {"error": str(e)}
        finally:
            self.procs.cleanup()
            keep = os.path.join(self.log_dir, "%s-%s-%d" % (row.id, which, rep))
            os.makedirs(keep, exist_ok=True)
            for f in os.listdir(tmp):
                if f.endswith(".log"):
                    shutil.move(os.path.join(tmp, f), os.path.join(keep, f))
            subprocess.run(["rm", "-rf", "--", tmp], check=False)
        res.update(row=row.id, backend=which, rep=rep, seconds=round(time.monotonic() - t0, 1))
        if "error" in res:
            print("  %-26s %-4s run %d: ERROR %s" % (row.id, which, rep + 1,
                                                     res["error"].splitlines()[0]), flush=True)
        else:
            ph = res["phases"]
            print("  %-26s %-4s run %d: %6.2f Mpps %8.1f cycles/packet  (%.0f s, setup %.1f s, "
                  "stop %.1f s)" % (row.id, which, rep + 1, res["mpps"], res["cycles_per_packet"],
                                    res["seconds"], ph["forwarding"],
                                    ph["frontend_stopped"] - ph["forwarding"] - ph["measured"]),
                  flush=True)
        return res


def spread(vals, fmt):
    """'median (min–max)' of vals, or '–' when there are none."""
    if not vals:
        return "–"
    med = fmt % statistics.median(vals)
    if len(vals) == 1:
        return med
    return "%s (%s–%s)" % (med, fmt % min(vals), fmt % max(vals))


def summarize(rows, runs, tsc_mhz):
    """Per row: medians and spreads for both backends, ratio and verdict. busy is
    the share of the measured window the backend spent in counted (busy) polls."""
    out = []
    for row in rows:
        s = {"row": row.id, "size": row.size}
        for b in BACKENDS:
            ok = [r for r in runs if r["row"] == row.id and r["backend"] == b and "error" not in r]
            s[b + "_mpps"] = [r["mpps"] for r in ok]
            s[b + "_cpp"] = [r["cycles_per_packet"] for r in ok]
            if tsc_mhz:
                s[b + "_busy"] = [100.0 * r["busy_cycles"] / (tsc_mhz * 1e6 * r["window"])
                                  for r in ok if r.get("window")]
            else:
                s[b + "_busy"] = []
            s[b + "_errors"] = sum(1 for r in runs if r["row"] == row.id and r["backend"] == b
                                   and "error" in r)
        target = TARGET[row.size]
        s["target"] = target
        if s["dpdk_cpp"] and s["vhk_cpp"]:
            s["ratio"] = statistics.median(s["vhk_cpp"]) / statistics.median(s["dpdk_cpp"])
            s["verdict"] = "pass" if s["ratio"] <= target else "miss"
        else:
            s["ratio"], s["verdict"] = None, "no data"
        out.append(s)
    return out


def table(summary):
    """The results as a markdown table."""
    lines = ["| row | Mpps DPDK | Mpps vhostkit | cycles/pkt DPDK | cycles/pkt vhostkit "
             "| ratio | target | result | busy DPDK / vhostkit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        err = ""
        if s["dpdk_errors"] or s["vhk_errors"]:
            err = " (failed runs: DPDK %d, vhostkit %d)" % (s["dpdk_errors"], s["vhk_errors"])
        busy = " / ".join("%.0f%%" % statistics.median(s[b + "_busy"]) if s[b + "_busy"]
                          else "–" for b in BACKENDS)
        lines.append("| %s | %s | %s | %s | %s | %s | <= %.2f | %s%s | %s |" % (
            s["row"], spread(s["dpdk_mpps"], "%.2f"), spread(s["vhk_mpps"], "%.2f"),
            spread(s["dpdk_cpp"], "%.0f"), spread(s["vhk_cpp"], "%.0f"),
            "–" if s["ratio"] is None else "%.2f" % s["ratio"], s["target"], s["verdict"], err,
            busy))
    return "\n".join(lines)


def run_micro(build_dir):
    """bench/callgrind --build-dir DIR: (status text, markdown table, JSON rows)."""
    tool = os.path.join(BENCH_DIR, "callgrind")
    if not os.access(tool, os.X_OK):
        print("bench/callgrind not found: no microbenchmark section", flush=True)
        return "not found", "", []
    print("== microbenchmark: bench/callgrind --build-dir %s" % build_dir, flush=True)
    p = subprocess.run([tool, "--build-dir", build_dir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, check=False)
    sys.stdout.write(p.stdout)
    tbl = "\n".join(line for line in p.stdout.splitlines() if line.startswith("|"))
    rows = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    if p.returncode != 0:
        return "failed (exit status %d)" % p.returncode, tbl, rows
    return "ok", tbl, rows


def build(build_dir):
    """Configure (release) if needed and build vhk-fwd."""
    if not os.path.isfile(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["meson", "setup", build_dir, "--buildtype=release"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    else:
        opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", build_dir],
                                         capture_output=True, text=True, check=True).stdout)
        bt = [o["value"] for o in opts if o["name"] == "buildtype"]
        if bt != ["release"]:
            print("== %s has buildtype %s: reconfiguring with --buildtype=release"
                  % (build_dir, bt[0] if bt else "?"), flush=True)
            subprocess.run(["meson", "configure", build_dir, "-Dbuildtype=release"],
                           check=True, stdout=subprocess.DEVNULL)
    targets = ["apps/vhk-fwd/vhk-fwd"]
    if os.access(os.path.join(BENCH_DIR, "callgrind"), os.X_OK):
        # The microbenchmark's programs: every linked target under bench/.
        listing = subprocess.run(["ninja", "-C", build_dir, "-t", "targets", "all"],
                                 capture_output=True, text=True, check=True).stdout
        targets += [line.split(":")[0] for line in listing.splitlines()
                    if line.startswith("bench/") and line.rstrip().endswith("_LINKER")]
    subprocess.run(["ninja", "-C", build_dir] + targets, check=True, stdout=subprocess.DEVNULL)


def parse_args(argv):
    """Command line."""
    ap = argparse.ArgumentParser(
        prog="bench/run", description="vhostkit vs DPDK vhost: virtio-user loopback benchmark "
        "(see bench/README.md).")
    ap.add_argument("--reps", type=int, default=3, help="runs per backend and row (default 3)")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="measured seconds of traffic per run (default 5)")
    ap.add_argument("--rows", metavar="PATTERN",
                    help="only rows whose id matches this regular expression (see --list)")
    ap.add_argument("--list", action="store_true", help="print the row ids and exit")
    ap.add_argument("--smoke", action="store_true",
                    help="one row, 1 run each, 2 s; writes BUILD/performance-smoke.md, "
                    "not docs/performance.md")
    ap.add_argument("--build-dir", default="build-bench", help="default build-bench")
    ap.add_argument("--no-write", action="store_true", help="print only, write no file")
    ap.add_argument("--no-micro", action="store_true", help="do not run bench/callgrind")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.seconds < 2:
        ap.error("--reps must be >= 1 and --seconds >= 2")
    return args


def main(argv):
    args = parse_args(argv)
    rows = all_rows()
    if args.list:
        print("\n".join(r.id for r in rows))
        return 0
    if args.smoke:
        args.reps, args.seconds = 1, 2.0
        rows = [r for r in rows if r.id == "loop-64-split-io0-mrg0"]
    elif args.rows:
        rows = [r for r in rows if re.search(args.rows, r.id)]
        if not rows:
            print("bench/run: no row matches %r (see --list)" % args.rows, file=sys.stderr)
            return 2
    os.chdir(ROOT)
    print("== building vhostkit and vhk-fwd (%s, --buildtype=release)" % args.build_dir,
          flush=True)
    build(args.build_dir)
    bench = Bench(args)
    subprocess.run(["rm", "-rf", "--", bench.log_dir], check=False)
    per_run = args.seconds + WARMUP + 4.1  # + setup and stop, as measured on 2 CPUs
    print("== %d row(s) x 2 backends x %d run(s), about %.0f min; logs in %s" % (
        len(rows), args.reps, len(rows) * 2 * args.reps * per_run / 60, bench.log_dir),
        flush=True)
    load_before = os.getloadavg()
    runs = []
    try:
        for row in rows:
            for rep in range(args.reps):
                for which in BACKENDS:  # A/B/A/B: drift hits both backends
                    runs.append(bench.run(which, row, rep))
    except KeyboardInterrupt:
        print("\nbench/run: interrupted; every process stopped", file=sys.stderr)
        return 130
    finally:
        bench.procs.cleanup()
    micro = ("skipped (--no-micro)", "", []) if args.no_micro else run_micro(args.build_dir)
    summary = summarize(rows, runs, bench.tsc_mhz)
    tbl = table(summary)
    print("\n" + tbl)
    verdicts = [s["verdict"] for s in summary]
    print("\n%d pass, %d miss, %d without data" % (
        verdicts.count("pass"), verdicts.count("miss"), verdicts.count("no data")))
    ctx = {"args": args, "argv": argv, "rows": rows, "all_rows": len(all_rows()),
           "runs": runs, "summary": summary, "table": tbl, "micro": micro,
           "tsc_mhz": bench.tsc_mhz, "load": (load_before, os.getloadavg()),
           "build_dir": args.build_dir, "start_delay": bench.start_delay}
    if not args.no_write:
        with open(os.path.join(args.build_dir, "bench-results.json"), "w") as f:
            json.dump({"runs": runs, "summary": summary, "micro": micro[2]}, f, indent=1)
            f.write("\n")
        out = (os.path.join(args.build_dir, "performance-smoke.md") if args.smoke
               else os.path.join(ROOT, "docs", "performance.md"))
        perfdoc.write(out, ctx)
        print("wrote %s" % os.path.relpath(out, ROOT))
    failed = any("error" in r for r in runs) or micro[0].startswith("failed")
    return 1 if failed else 0


def on_sigterm(_sig, _frame):
    """SIGTERM ends the benchmark like Ctrl-C (processes stopped, files removed)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C raises KeyboardInterrupt even when a parent started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
