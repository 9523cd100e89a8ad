# SPDX-License-Identifier: MIT
"""Shared pieces of the interop suite: processes, vhk-fwd, checks, results.

Every process a case starts is recorded and, at the end, stopped by its pid
(SIGINT first so it prints its final statistics, SIGKILL if it does not
exit). Sockets, logs and the guest console live in a per-case temp dir.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

SRC_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CaseFailed(Exception):
    """A step could not be carried out (the case then fails)."""


class Ctx:
    """One case's working state: build dir, temp dir, processes, checks."""

    def __init__(self, build_dir, name):
        self.build_dir = os.path.abspath(build_dir)
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="vhk-interop-%s-" % name)
        self.fwd_bin = os.path.join(self.build_dir, "apps", "vhk-fwd", "vhk-fwd")
        self.rng_bin = os.path.join(self.build_dir, "apps", "vhk-rng", "vhk-rng")
        self.guest = None  # (kernel, initrd, version) once prepared (QEMU cases)
        self.procs = []
        self.checks = []
        self.numbers = {}
        self.dpdk_prefixes = []

    def path(self, name):
        """A file in the case's temp dir."""
        return os.path.join(self.tmp, name)

    def check(self, what, ok, detail=""):
        """Record one assertion; printed at once so the meson log tells the story."""
        self.checks.append({"check": what, "ok": bool(ok), "detail": str(detail)})
        print("%s: %s %s" % ("ok" if ok else "FAILED", what, detail), flush=True)
        return ok

    def start(self, argv, log_name, cpu=None, stdin=subprocess.DEVNULL):
        """Start a process with stdout+stderr to a log file; returns the Popen."""
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        print("$ " + " ".join(argv), flush=True)
        log = open(self.path(log_name), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             stdin=stdin, start_new_session=True)
        log.close()
        p.log_path = self.path(log_name)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGINT, timeout=20):
        """Signal one process by pid and reap it; SIGKILL after timeout."""
        return stop_process(p, sig, timeout)

    def cleanup(self):
        """Stop whatever is still running, keep the logs under
        BUILD/interop-results/NAME.logs/, remove DPDK run files and the temp dir."""
        for p in self.procs:
            self.stop(p, signal.SIGINT, timeout=10)
        keep = os.path.join(self.build_dir, "interop-results", self.name + ".logs")
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep, exist_ok=True)
        for log in os.listdir(self.tmp):
            if log.endswith(".log"):
                shutil.copy(self.path(log), keep)
        for prefix in self.dpdk_prefixes:
            shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_log(p):
    """Current text of a process's log (as far as written)."""
    with open(p.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def stop_process(p, sig=signal.SIGINT, timeout=20):
    """Signal process p by pid and reap it; SIGKILL after timeout. Returns its status."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode


def wait_for(pred, timeout, step=0.1):
    """Poll pred() until it returns something true or the timeout passes."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def wait_socket(path, timeout=10):
    """Wait until a listening unix socket file exists."""
    if not wait_for(lambda: os.path.exists(path), timeout):
        raise CaseFailed("socket %s did not appear" % path)


# ---- vhk-fwd ----

def start_fwd(ctx, sock, mode, *extra, cpu=0, log="vhk-fwd.log"):
    """Start vhk-fwd (pinned to one CPU) with --json; returns the Popen."""
    if not os.access(ctx.fwd_bin, os.X_OK):
        raise CaseFailed("vhk-fwd not built: " + ctx.fwd_bin)
    argv = [ctx.fwd_bin, "--socket", sock, "--mode", mode, "--json"] + list(extra)
    return ctx.start(argv, log, cpu=cpu)


def fwd_result(ctx, p, stop=True):
    """Stop vhk-fwd (SIGINT) unless it ended by itself; return its JSON counters."""
    if stop:
        ctx.stop(p)
    else:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            ctx.stop(p)
    text = read_log(p)
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise CaseFailed("vhk-fwd printed no JSON result (exit %s):\n%s" % (p.returncode, text[-2000:]))


def fwd_period_rx(text):
    """Per-period rx pps values from vhk-fwd's live statistics lines."""
    return [float(m) for m in re.findall(r"^rx\s+([0-9.]+) pps", text, re.M)]


# ---- vhk-rng ----

def start_rng(ctx, sock, *extra, cpu=0, log="vhk-rng.log"):
    """Start vhk-rng (pinned to one CPU); returns the Popen."""
    if not os.access(ctx.rng_bin, os.X_OK):
        raise CaseFailed("vhk-rng not built: " + ctx.rng_bin)
    return ctx.start([ctx.rng_bin, "--socket", sock] + list(extra), log, cpu=cpu)


def rng_result(ctx, p):
    """Stop vhk-rng (SIGINT); return the counters of its JSON line."""
    status = ctx.stop(p)
    text = read_log(p)
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                res = json.loads(line)
            except ValueError:
                break
            res["exit_status"] = status
            return res
    raise CaseFailed("vhk-rng printed no JSON result (exit %s):\n%s" % (status, text[-2000:]))


def rng_stream(seed, n):
    """The first n bytes of vhk-rng's seeded stream (vhk-rng.8: counter-mode splitmix64)."""
    mask = (1 << 64) - 1
    out = bytearray()
    for k in range((n + 7) // 8):
        z = (seed + (k + 1) * 0x9e3779b97f4a7c15) & mask
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
        out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out[:n])


# ---- results ----

def write_result(build_dir, res):
    """Write BUILD/interop-results/NAME.json."""
    d = os.path.join(os.path.abspath(build_dir), "interop-results")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, res["case"] + ".json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")


def command_output(argv):
    """stdout of argv, or "" when the program is missing or fails to run."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""


def tool_versions(kernel=None):
    """QEMU, DPDK and guest kernel versions for the report."""
    v = {}
    out = command_output(["qemu-system-x86_64", "--version"]).splitlines()
    v["qemu"] = out[0].replace("QEMU emulator version ", "") if out else "not installed"
    v["dpdk"] = command_output(["dpkg-query", "-W", "-f=${Version}", "dpdk"]) or "not installed"
    if kernel:
        v["kernel"] = kernel
    head = command_output(["git", "-C", SRC_DIR, "describe", "--always", "--dirty"]).strip()
    v["vhostkit"] = head or "unknown"
    return v
