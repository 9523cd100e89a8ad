# SPDX-License-Identifier: MIT
"""Writes docs/performance.md for bench/run: machine, versions, command, the
results table, notes on the method and the microbenchmark section. Everything
below the hand-written marker of an existing file is kept verbatim."""
import datetime
import os
import platform
import shlex
import subprocess

MARKER = "<!-- hand-written: kept by bench/run -->"


def _out(argv):
    """First line of a command's output, or 'unknown'."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    lines = p.stdout.strip().splitlines()
    return lines[0] if p.returncode == 0 and lines else "unknown"


def _cpuinfo(key):
    """The first value of key in /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() == key:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine(tsc_mhz):
    """(label, value) pairs describing the machine and the software."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mhz = _cpuinfo("cpu MHz")
    return [
        ("CPU", "%s, %d logical CPUs" % (_cpuinfo("model name"), os.cpu_count() or 0)),
        ("Clock", "cpu MHz %s (/proc/cpuinfo); TSC %s MHz (testpmd), the clock of every "
         "cycle count below" % (mhz, tsc_mhz if tsc_mhz else "not reported")),
        ("Kernel", "%s %s" % (platform.system(), platform.release())),
        ("DPDK", "%s (Debian package `dpdk`: dpdk-testpmd, net_vhost, net_virtio_user)"
         % _out(["dpkg-query", "-W", "-f=${Version}", "dpdk"])),
        ("Compiler", _out(["gcc", "--version"])),
        ("vhostkit", "%s (`git describe --always --dirty`)"
         % _out(["git", "-C", root, "describe", "--always", "--dirty"])),
    ]


METHOD = """\
- **Topology.** DPDK `dpdk-testpmd` with `net_virtio_user` is the frontend (the "guest"),
  pinned to CPU 1 (`--lcores 0@1,1@1`). The backend runs on CPU 0: (A) `dpdk-testpmd` with
  `net_vhost` (`--lcores 0@0,1@0 --record-core-cycles`), or (B) `apps/vhk-fwd --json` under
  `taskset -c 0`. Both testpmd instances use `--no-huge -m 1024 --total-num-mbufs=16384
  --burst=32 --nb-cores=1 --no-pci --no-flush-rx` and their own `--file-prefix`; vhk-fwd uses
  `--burst 32`. The backend is the vhost-user socket server. Each testpmd's main lcore shares
  the CPU with its forwarding lcore; it sleeps between its once-a-second statistics.
- **Rows.** `loop-*`: the canonical loopback, both sides `mac` forwarding;
  the backend starts it with 32 bursts (`start tx_first 32` / vhk-fwd `--tx-first=32`,
  as DPDK's DTS plan does), frame size `--txpkts`. `g2h-*`: frontend `txonly` → backend
  `rxonly`. `h2g-*`: backend `txonly` (`--txpkts` / vhk-fwd `--pkt-len`) → frontend
  `rxonly`. `ioN-mrgN` are virtio-user's `in_order` and `mrg_rxbuf`, always given
  explicitly (virtio-user defaults `in_order` to 1); `split`/`packed` is `packed_vq`.
- **Mpps** is the frontend's own rate: the time-weighted mean of its `Rx-pps` (`loop`,
  `h2g`) or `Tx-pps` (`g2h`) over the statistics periods (`--stats-period 1`; testpmd's
  periods last 1 or 2 s) that lie entirely inside the measured window, from the backend's
  start plus a 0.5 s warm-up to the backend's stop.
- **cycles/pkt** is the backend's busy cycles per packet, counted the same way for both:
  TSC cycles of the polls that received packets (or, for `txonly`, built a burst), divided
  by the packets received (or sent for `txonly`): testpmd 22.11's `CPU cycles/packet` line
  and vhk-fwd's `busy_cycles_per_packet` (`apps/vhk-fwd/vhk-fwd.8`). Idle polls are not
  counted, so the figure is the backend core's cost even when the frontend is the bottleneck.
  The DPDK backend runs interactively: `start` once the frontend forwards, `stop` before the
  frontend is stopped, so its count covers the measured window only. vhk-fwd counts no idle
  poll; as a `txonly` backend it waits 1 s (`--start-delay`) so that it does not count
  bursts into a ring the starting frontend does not poll yet.
- **busy** = the backend's counted cycles ÷ all TSC cycles of the measured window (median;
  approximate for vhk-fwd, whose start of traffic is known to a few tenths of a second).
  Near 100 %: the backend was saturated, so the other side waited for it. Well below 100 %:
  the frontend set the pace and cycles/pkt is the backend's own cost per packet. A `txonly`
  backend (`h2g-*`) is always near 100 %: testpmd counts every burst it builds, also into a
  full ring, and vhk-fwd does the same, so in `h2g` rows cycles/pkt ≈ TSC Hz ÷ rate, a
  backend cost only when the backend is the slower side.
- **ratio** = median vhostkit cycles/pkt ÷ median DPDK cycles/pkt. Target: ≤ 0.67 at 64 B,
  ≤ 0.80 at 1518 B; `pass`/`miss` per row. Cells are `median (min–max)` over the runs of
  that backend; the runs of a row alternate DPDK, vhostkit, DPDK, vhostkit, … so that drift
  on the machine hits both.
- **Noise.** Cycles are wall-clock TSC cycles of busy polls: time the backend's CPU spends on
  other processes inside a counted poll is counted too. Run on an otherwise idle machine;
  the load average before and after the run is printed above. Per-run numbers and logs:
  `BUILD/bench-results.json` and `BUILD/bench-logs/`.
"""


def write(path, ctx):
    """Rewrite path from ctx (see bench.main), keeping its hand-written part."""
    keep = "\n"
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if MARKER in old:
            keep = old.split(MARKER, 1)[1]
    args = ctx["args"]
    n_rows = len(ctx["rows"])
    scope = "all %d rows" % n_rows if n_rows == ctx["all_rows"] else \
        "%d of %d rows (`--rows`/`--smoke`)" % (n_rows, ctx["all_rows"])
    lb, la = ctx["load"]
    out = ["# Performance: vhostkit vs DPDK vhost", "",
           "Generated by `bench/run` (everything above the hand-written marker at the end is "
           "rewritten on every run; see `bench/README.md`).", "",
           "- Date: %s" % datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"),
           "- Command: `%s`" % " ".join(["bench/run"] + [shlex.quote(a) for a in ctx["argv"]]),
           "- Scope: %s, %d run(s) per backend and row, %.0f s of measured traffic per run"
           % (scope, args.reps, args.seconds),
           "- Build: `%s`, `--buildtype=release`" % ctx["build_dir"],
           "- Load average (1 min) before / after: %.2f / %.2f" % (lb[0], la[0])]
    for label, value in machine(ctx["tsc_mhz"]):
        out.append("- %s: %s" % (label, value))
    out += ["", "## Results", "", ctx["table"], "",
            "Cells: `median (min–max)` over the runs. cycles/pkt: the backend core's busy TSC "
            "cycles per packet; ratio: vhostkit ÷ DPDK cycles/pkt (lower is better for "
            "vhostkit). Row ids: `KIND-SIZE-RING-ioIN_ORDER-mrgMRG_RXBUF`, KIND `loop` (mac "
            "loopback), `g2h` (frontend txonly → backend rxonly), `h2g` (backend txonly → "
            "frontend rxonly). See Method below and `bench/README.md`.", ""]
    errors = [r for r in ctx["runs"] if "error" in r]
    if errors:
        out += ["Failed runs (logs under `BUILD/bench-logs/`):", ""]
        out += ["- %s %s run %d: %s" % (r["row"], r["backend"], r["rep"] + 1,
                                        r["error"].splitlines()[0]) for r in errors]
        out.append("")
    out += ["## Method", "", METHOD]
    status, tbl, _ = ctx["micro"]
    out += ["## Microbenchmark: instructions per packet (callgrind)", ""]
    if status == "ok" and tbl:
        out += ["From `bench/callgrind --build-dir %s`:" % ctx["build_dir"], "", tbl, ""]
    elif status == "not found":
        out += ["`bench/callgrind` was not found in this tree; no microbenchmark was run.", ""]
    else:
        out += ["`bench/callgrind`: %s." % status, ""]
        if tbl:
            out += [tbl, ""]
    text = "\n".join(out) + "\n" + MARKER + keep
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
