# SPDX-License-Identifier: MIT
"""Live migration cases: precopy under traffic, A -> B -> A, two QEMU
processes on this machine, each served by its own vhk-fwd --mode echo, the
migration stream over a unix socket, driven through QMP.

The guest pings the backend in a loop (guest-init.sh vhk.mig=1: one echo
request at a time, 56-byte payloads so Linux copies each reply out of its
receive buffer and the buffer's page is written by the backend only). The
source migrates to a destination started with -incoming defer -S, its
bandwidth capped so the migration lasts seconds with traffic during it.
When it completes both guests are stopped (source postmigrate, destination
paused before its backend starts), and their RAM is compared page by page
(the two RAM memfds, opened through /proc/PID/fd and mapped): a page the
backend wrote and did not log in the dirty bitmap is not sent again and
differs. Pings that keep flowing prove nothing: a backend whose log never
reaches QEMU keeps pinging.
Then the destination runs, the source quits, the pings go on from where
they were, the destination's vhk-fwd sees the RARP announcement QEMU asks
for (SEND_RARP), and the guest goes back to a new QEMU on the first
backend the same way.
"""
import json
import mmap
import os
import re
import socket
import time

import guest
from common import CaseFailed, fwd_result, read_log, start_fwd, wait_for, wait_socket
from qemu_cases import qemu_argv

PAGE = 4096
RAM = 512 << 20
MIG_RE = re.compile(r"VHK-MIG (pong|lost) seq=(\d+)")
BANDWIDTH = 32 << 20  # bytes/s: a few seconds of migration with traffic during it


class Qmp:
    """A minimal QMP client: one JSON object per line, events skipped."""

    def __init__(self, path, timeout=30):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(30)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise CaseFailed("QMP socket %s: no QEMU there" % path)
                time.sleep(0.2)
        self.buf = b""
        self.events = []
        self._line()  # the greeting
        self.cmd("qmp_capabilities")

    def _line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise CaseFailed("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None, check=True):
        """Run one command; its "return" value (or the error object with check=False)."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._line()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                if check:
                    raise CaseFailed("QMP %s: %s" % (name, r["error"]))
                return r
            return r.get("return")

    def close(self):
        self.sock.close()


def ram_fd_path(pid):
    """/proc/PID/fd/N of QEMU's guest RAM memfd (memory-backend-memfd)."""
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            if "memory-backend-memfd" in os.readlink(os.path.join(d, n)):
                path = os.path.join(d, n)
                if os.stat(path).st_size == RAM:
                    return path
        except OSError:
            continue
    raise CaseFailed("QEMU %d holds no %d MiB memory-backend-memfd" % (pid, RAM >> 20))


def compare_ram(pid_a, pid_b):
    """Guest physical addresses of the pages that differ between two stopped QEMUs
    (their RAM memfds read directly: -m 512 on one backend, GPA = file offset)."""
    diff = []
    chunk = 16 << 20
    with open(ram_fd_path(pid_a), "rb", buffering=0) as fa, \
            open(ram_fd_path(pid_b), "rb", buffering=0) as fb:
        with mmap.mmap(fa.fileno(), RAM, prot=mmap.PROT_READ) as ma, \
                mmap.mmap(fb.fileno(), RAM, prot=mmap.PROT_READ) as mb:
            for off in range(0, RAM, chunk):
                da, db = ma[off:off + chunk], mb[off:off + chunk]
                if da == db:
                    continue
                for p in range(0, chunk, PAGE):
                    if da[p:p + PAGE] != db[p:p + PAGE]:
                        diff.append(off + p)
    return diff


def ring_pages(qmp):
    """{page GPA: "vqN desc/avail/used"} of the net device's rings (x-query-virtio)."""
    names = {}
    try:
        for dev in qmp.cmd("x-query-virtio"):
            if "net" not in dev.get("name", ""):
                continue
            for q in range(8):
                st = qmp.cmd("x-query-virtio-queue-status",
                             {"path": dev["path"], "queue": q}, check=False)
                if not isinstance(st, dict) or "error" in st:
                    break
                for k in ("vring-desc", "vring-avail", "vring-used"):
                    if k in st:
                        names[st[k] // PAGE * PAGE] = "vq%d %s" % (q, k[6:])
    except CaseFailed:
        pass
    return names


def mig_lines(text):
    """(kind, seq) of every ping result on a console."""
    return [(k, int(s)) for k, s in MIG_RE.findall(text)]


def pongs(text):
    return sum(1 for k, _ in mig_lines(text) if k == "pong")


class Vm:
    """One QEMU process of the guest, with its QMP socket and console."""

    def __init__(self, ctx, tag, sock, kernel, initrd, smp, queues, dev_opts, append,
                 incoming=False, paused=True):
        self.tag = tag
        self.qmp_path = ctx.path("qmp-%s.sock" % tag)
        argv = qemu_argv(kernel, initrd, sock, smp, queues, dev_opts=dev_opts, append=append)
        argv += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if incoming:
            argv += ["-incoming", "defer"] + (["-S"] if paused else [])
        self.proc = ctx.start(argv, "console-%s.log" % tag)
        self.qmp = Qmp(self.qmp_path)

    def text(self):
        return read_log(self.proc)

    def quit(self, ctx):
        try:
            self.qmp.cmd("quit", check=False)
        except (CaseFailed, OSError):
            pass
        self.qmp.close()
        wait_for(lambda: self.proc.poll() is not None, 20)
        ctx.stop(self.proc)


def migrate(ctx, src, dst, leg, postcopy=False):
    """Precopy @src -> @dst (started -incoming defer -S); compare RAM; run @dst, quit @src.

    With @postcopy the switch to postcopy is asked as soon as the migration is
    active, and @dst runs at once (no -S): its backend gets its memory table
    while pages are still missing, through the postcopy handshake; the RAM
    cannot be compared (the destination guest runs), the pings must go on."""
    uri = "unix:" + ctx.path("mig-%s.sock" % leg)
    if postcopy:
        caps = {"capabilities": [{"capability": "postcopy-ram", "state": True}]}
        dst.qmp.cmd("migrate-set-capabilities", caps)
        src.qmp.cmd("migrate-set-capabilities", caps)
    dst.qmp.cmd("migrate-incoming", {"uri": uri})
    params = {"max-bandwidth": BANDWIDTH}
    if postcopy:
        params["max-postcopy-bandwidth"] = BANDWIDTH
    src.qmp.cmd("migrate-set-parameters", params)
    before = pongs(src.text())
    src.qmp.cmd("migrate", {"uri": uri})
    state = {}
    if postcopy:
        wait_for(lambda: src.qmp.cmd("query-migrate").get("status") != "setup", 30, step=0.1)
        src.qmp.cmd("migrate-start-postcopy")

    def finished():
        state.update(src.qmp.cmd("query-migrate"))
        return state.get("status") in ("completed", "failed", "cancelled", "postcopy-paused")

    wait_for(finished, 120, step=0.2)
    status = state.get("status")
    ram = state.get("ram", {})
    during = pongs(src.text()) - before
    ctx.numbers.update({
        leg + "_status": status, leg + "_total_ms": state.get("total-time"),
        leg + "_downtime_ms": state.get("downtime"),
        leg + "_dirty_sync_count": ram.get("dirty-sync-count"),
        leg + "_pages_sent": ram.get("normal"), leg + "_zero_pages": ram.get("duplicate"),
        leg + "_pongs_during": during})
    if not ctx.check("%s: migration completed" % leg, status == "completed",
                     "status %s %s" % (status, state.get("error-desc", ""))):
        raise CaseFailed("%s: migration %s" % (leg, status))
    if postcopy:
        ctx.numbers.update({leg + "_postcopy_requests": ram.get("postcopy-requests"),
                            leg + "_postcopy_bytes": ram.get("postcopy-bytes")})
        ctx.check("%s: pages were requested in postcopy" % leg,
                  (ram.get("postcopy-requests") or 0) > 0,
                  "postcopy-requests %s" % ram.get("postcopy-requests"))
        src.quit(ctx)
        ctx.check("%s: the guest keeps getting replies on the destination" % leg,
                  wait_for(lambda: pongs(dst.text()) >= 3, 60, step=0.25),
                  "%d replies there" % pongs(dst.text()))
        return
    ctx.check("%s: the guest pinged during the migration" % leg, during > 0,
              "%d replies between migrate and completed" % during)
    wait_for(lambda: dst.qmp.cmd("query-status").get("status") == "paused", 20)
    # Both stopped: the source after completion, the destination before cont.
    t0 = time.monotonic()
    diff = compare_ram(src.proc.pid, dst.proc.pid)
    ctx.numbers[leg + "_compare_s"] = round(time.monotonic() - t0, 1)
    ctx.numbers[leg + "_differing_pages"] = len(diff)
    rings = ring_pages(src.qmp) if diff else {}
    ctx.check("%s: guest RAM identical on both sides, page by page" % leg, not diff,
              "%d page(s) differ: %s" % (len(diff), ", ".join(
                  "0x%x%s" % (g, " (%s)" % rings[g] if g in rings else "") for g in diff[:8])))
    dst.qmp.cmd("cont")
    src.quit(ctx)
    seq_end = max([s for _, s in mig_lines(src.text())] or [0])
    got = wait_for(lambda: pongs(dst.text()) >= 3, 60, step=0.25)
    lines = mig_lines(dst.text())
    ctx.check("%s: the guest keeps getting replies on the destination" % leg, got,
              "%d replies there" % pongs(dst.text()))
    ctx.check("%s: its ping sequence continues where the source's stopped" % leg,
              bool(lines) and lines[0][1] <= seq_end + 2,
              "source ended at seq %d, destination starts at %s" %
              (seq_end, lines[0][1] if lines else "-"))
    lost = [s for k, s in lines if k == "lost"]
    ctx.numbers[leg + "_lost_after"] = len(lost)
    ctx.check("%s: no ping lost for good (a reply among the last three)" % leg,
              any(k == "pong" for k, _ in lines[-3:]), "lost seqs %s" % lost[:10])


def run_migration_case(ctx, smp=1, queues=1, dev_opts="", postcopy=False):
    """Boot on backend A, migrate to B, then back to a new QEMU on A."""
    if postcopy and os.geteuid() != 0:
        try:
            with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
                allowed = f.read().strip() == "1"
        except OSError:
            allowed = False
        if not allowed:
            # vhk-fwd's POSTCOPY_ADVISE would fail with EPERM and QEMU's migration with it.
            raise CaseFailed("postcopy needs the userfaultfd syscall: run as root or set "
                             "vm.unprivileged_userfaultfd=1")
    kernel, initrd, version = ctx.guest or guest.ensure_guest(ctx.build_dir)
    ctx.numbers["kernel"] = version
    sock_a, sock_b = ctx.path("a.sock"), ctx.path("b.sock")
    fwd_args = ["--stats-period", "0"]
    if queues > 1:
        fwd_args += ["--queues", str(queues)]
    fwd_a = start_fwd(ctx, sock_a, "echo", *fwd_args, log="vhk-fwd-a.log")
    fwd_b = start_fwd(ctx, sock_b, "echo", *fwd_args, log="vhk-fwd-b.log")
    wait_socket(sock_a)
    wait_socket(sock_b)
    append = "vhk.ip=10.0.0.2 vhk.peer=10.0.0.1 vhk.mig=1 vhk.sizes=56"
    if queues > 1:
        append += " vhk.cpus=" + ",".join(str(c) for c in range(smp))
    vm = (kernel, initrd, smp, queues, dev_opts, append)
    t0 = time.monotonic()
    a1 = Vm(ctx, "a1", sock_a, *vm)
    if not wait_for(lambda: pongs(a1.text()) >= 3 or a1.proc.poll() is not None, 120,
                    step=0.25):
        raise CaseFailed("the guest did not get 3 replies on the source: %s"
                         % a1.text()[-1500:])
    ctx.numbers["boot_to_3_replies_s"] = round(time.monotonic() - t0, 1)
    b = Vm(ctx, "b", sock_b, *vm, incoming=True, paused=not postcopy)
    migrate(ctx, a1, b, "a_to_b", postcopy)
    a2 = Vm(ctx, "a2", sock_a, *vm, incoming=True, paused=not postcopy)
    migrate(ctx, b, a2, "b_to_a", postcopy)
    a2.quit(ctx)
    ra, rb = fwd_result(ctx, fwd_a), fwd_result(ctx, fwd_b)
    ctx.numbers.update(fwd_a_devices=ra["devices"], fwd_b_devices=rb["devices"],
                       fwd_a_rarp=ra.get("rx_rarp"), fwd_b_rarp=rb.get("rx_rarp"),
                       seconds_total=round(time.monotonic() - t0, 1))
    ctx.check("vhk-fwd B saw the RARP announcement after A -> B", rb.get("rx_rarp", 0) >= 1,
              "rx_rarp=%s" % rb.get("rx_rarp"))
    ctx.check("vhk-fwd A saw the RARP announcement after B -> A", ra.get("rx_rarp", 0) >= 1,
              "rx_rarp=%s" % ra.get("rx_rarp"))
    ctx.check("vhk-fwd A served two guests (boot, and back from B), B one",
              ra["devices"] >= 2 and rb["devices"] >= 1,
              "devices A=%d B=%d" % (ra["devices"], rb["devices"]))
    for name, r in (("A", ra), ("B", rb)):
        log = read_log(fwd_a if name == "A" else fwd_b)
        broken = re.findall(r"vring \d+ broken.*", log)
        ctx.check("vhk-fwd %s: no ring broken" % name, not broken, "; ".join(broken[:3]))


def migration_cases():
    """name -> (configuration, function(ctx))."""
    return {
        "qemu-migrate": ("precopy A -> B -> A under ping traffic, split ring: guest RAM "
                         "compared page by page at each switch-over, RARP at the destination",
                         lambda c: run_migration_case(c)),
        "qemu-migrate-packed": ("precopy A -> B -> A under ping traffic, packed=on: RAM "
                                "compared page by page, RARP at the destination",
                                lambda c: run_migration_case(c, dev_opts=",packed=on")),
        "qemu-migrate-mq": ("precopy A -> B -> A under ping traffic on both queue pairs "
                            "(mq=on, -smp 2): RAM compared page by page, RARP",
                            lambda c: run_migration_case(c, smp=2, queues=2,
                                                         dev_opts=",mq=on")),
        "qemu-migrate-postcopy": ("postcopy A -> B -> A under ping traffic, split ring: "
                                  "switched to postcopy as soon as active, the destination "
                                  "runs at once (its backend maps memory through the "
                                  "postcopy handshake), pages requested, pings continue, RARP",
                                  lambda c: run_migration_case(c, postcopy=True)),
    }
