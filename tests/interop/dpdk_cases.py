# SPDX-License-Identifier: MIT
"""DPDK cases: dpdk-testpmd with net_virtio_user as the frontend of vhk-fwd.

vhk-fwd runs on CPU 0, testpmd's lcores on CPU 1 (interop.md). testpmd is
stopped with SIGINT and its final "Forward statistics" are parsed; its
periodic "NIC statistics" blocks (--stats-period 1) show the run's progress.
"""
import itertools
import os
import re
import shutil
import signal
import struct
import subprocess
import time

from common import CaseFailed, fwd_result, read_log, start_fwd, wait_for, wait_socket

PKT_LEN = 64
RUN_SECONDS = 4

CONFIGS = {
    "mrg0": ("mrg_rxbuf=0", {"vdev": ",mrg_rxbuf=0"}),
    "mrg1": ("mrg_rxbuf=1", {"vdev": ",mrg_rxbuf=1"}),
    "qs1024": ("queue_size=1024", {"vdev": ",queue_size=1024", "desc": 1024}),
    "q2": ("queues=2", {"queues": 2}),
    "server": ("server=1 (vhk-fwd --client)", {"server": True}),
    "packed": ("packed_vq=1", {"vdev": ",packed_vq=1"}),
}

# Issue 4: a compact matrix of packed/split x in_order x mrg_rxbuf, and the
# vectorized packed path. in_order is always explicit (virtio-user's default
# may change between DPDK releases).
EXTRA = {
    "dpdk-loop-packed-io0-mrg0": ("loop", "packed_vq=1,in_order=0,mrg_rxbuf=0",
                                  {"vdev": ",packed_vq=1,in_order=0,mrg_rxbuf=0"}),
    "dpdk-loop-packed-io0-mrg1": ("loop", "packed_vq=1,in_order=0,mrg_rxbuf=1",
                                  {"vdev": ",packed_vq=1,in_order=0,mrg_rxbuf=1"}),
    "dpdk-loop-packed-io1-mrg0": ("loop", "packed_vq=1,in_order=1,mrg_rxbuf=0",
                                  {"vdev": ",packed_vq=1,in_order=1,mrg_rxbuf=0"}),
    "dpdk-loop-packed-io1-mrg1": ("loop", "packed_vq=1,in_order=1,mrg_rxbuf=1",
                                  {"vdev": ",packed_vq=1,in_order=1,mrg_rxbuf=1"}),
    "dpdk-tx-packed-io0": ("tx", "packed_vq=1,in_order=0", {"vdev": ",packed_vq=1,in_order=0"}),
    "dpdk-rx-packed-io0": ("rx", "packed_vq=1,in_order=0", {"vdev": ",packed_vq=1,in_order=0"}),
    "dpdk-loop-packed-vec": (
        "loop", "packed_vq=1,vectorized=1,in_order=1,mrg_rxbuf=0, "
        "EAL --force-max-simd-bitwidth=512 (scalar fallback without AVX-512)",
        {"vdev": ",packed_vq=1,vectorized=1,in_order=1,mrg_rxbuf=0",
         "eal": ["--force-max-simd-bitwidth=512", "--log-level=pmd.net.virtio.*:info"]}),
    "dpdk-loop-split-io1": ("loop", "split ring, in_order=1,mrg_rxbuf=0",
                            {"vdev": ",packed_vq=0,in_order=1,mrg_rxbuf=0"}),
}

# Issue 10: multi-segment transmit. testpmd txonly sends 3-segment frames
# (--txpkts=64,64,64 with the MULTI_SEGS offload); virtio-user sends each
# through an indirect table, and its packed driver leaves WRITE on the
# table's header entry. The frames' bytes are checked by vhk-fwd
# (--expect-frame, see txonly_frames), so the MACs are fixed. Split runs with
# in_order=0: virtio-user's in-order transmit never uses indirect tables.
TP_MAC, FWD_MAC = "02:00:00:00:00:02", "02:00:00:00:00:01"
MSEG = {"txpkts": (64, 64, 64), "check_bytes": True,
        "tp_args": ["--tx-offloads=0x8000", "--eth-peer=0," + FWD_MAC]}
MSEG_DESC = ", 3-segment frames (txpkts=64,64,64, MULTI_SEGS) in indirect tables, bytes checked"
for _ring, _io in (("packed", 0), ("packed", 1), ("split", 0)):
    EXTRA["dpdk-tx-mseg-%s-io%d" % (_ring, _io)] = (
        "tx", "packed_vq=%d,in_order=%d%s" % (_ring == "packed", _io, MSEG_DESC),
        dict(MSEG, vdev=",packed_vq=%d,in_order=%d,mac=%s" % (_ring == "packed", _io, TP_MAC)))


def ip_checksum(b):
    """The Internet checksum of @b (even length)."""
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def txonly_frames(segs, src=TP_MAC, dst=FWD_MAC):
    """Every frame testpmd 22.11 txonly can send with --txpkts=SEGS.

    Per frame it writes only the 42 bytes of Ethernet (dst = --eth-peer, src =
    the port's MAC, IPv4), IPv4 (198.18.0.1 -> 198.18.0.2, TTL 64, id 0, no
    options, header checksum) and UDP (port 9 -> 9, no checksum) headers at
    the start of the first segment. The rest is whatever the mbufs hold: a
    fresh mbuf is zero, and the only thing ever written into this pool's
    mbufs is those headers at the same offset (the net header of an indirect
    transmit lives in the driver's own region), so every later segment is
    either zeros or the 42 header bytes followed by zeros. The frames are
    the combinations of those choices (4 for 3 segments)."""
    length = sum(segs)
    if segs[0] < 42:
        raise ValueError("the headers must fit the first segment")
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, length - 14, 0, 0, 64, 17, 0,
                               bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])))
    struct.pack_into("!H", ip, 10, ip_checksum(bytes(ip)))
    udp = struct.pack("!HHHH", 9, 9, length - 34, 0)
    mac = lambda m: bytes.fromhex(m.replace(":", ""))  # noqa: E731
    hdrs = mac(dst) + mac(src) + b"\x08\x00" + bytes(ip) + udp
    first = (hdrs + bytes(segs[0]))[:segs[0]]
    later = [(bytes(n), (hdrs + bytes(n))[:n]) for n in segs[1:]]
    return [first + b"".join(c) for c in itertools.product(*later)]


PATH_RE = re.compile(r"(?i)(using|disabled|enabled)[^\n]*(vector|simd|avx|in[-_ ]order|mergeable|packed)[^\n]*")


def record_paths(ctx, text):
    """Note which Rx/Tx paths DPDK says it chose (numbers only, no check)."""
    seen = []
    for m in PATH_RE.finditer(text):
        line = m.group(0).strip()
        if line not in seen:
            seen.append(line)
    ctx.numbers["dpdk_paths"] = "; ".join(seen[:6]) or "not logged"


def testpmd_start(ctx, sock, fwd_mode, cfg, extra=(), log="testpmd.log", interactive=False):
    """Start testpmd with a virtio-user port on sock; returns the Popen.

    interactive: "-i --auto-start" with commands on stdin (testpmd_command), so
    that forwarding can stop while the port stays up."""
    prefix = "vhk-%s-%d" % (ctx.name, os.getpid())
    if prefix not in ctx.dpdk_prefixes:
        ctx.dpdk_prefixes.append(prefix)
    q = cfg.get("queues", 1)
    vdev = "net_virtio_user0,path=%s,queues=%d%s%s" % (
        sock, q, cfg.get("vdev", ""), ",server=1" if cfg.get("server") else "")
    argv = ["dpdk-testpmd", "--lcores", "0@1,1@1", "--no-huge", "-m", "1024",
            "--file-prefix=" + prefix, "--no-pci", "--vdev", vdev] + list(cfg.get("eal", ())) + [
            "--",
            "--nb-cores=1", "--forward-mode=" + fwd_mode] + (
                ["-i", "--auto-start"] if interactive else ["--stats-period", "1"]) + [
            "--total-num-mbufs=16384", "--rxq=%d" % q, "--txq=%d" % q,
            "--txpkts=" + ",".join(str(n) for n in cfg.get("txpkts", (PKT_LEN,))),
            "--no-flush-rx"] + list(cfg.get("tp_args", ())) + list(extra)
    if cfg.get("desc"):
        argv += ["--rxd=%d" % cfg["desc"], "--txd=%d" % cfg["desc"]]
    if interactive:  # line-buffered, so that each command's output shows at once
        return ctx.start(["stdbuf", "-oL"] + argv, log, stdin=subprocess.PIPE)
    return ctx.start(argv, log)


def testpmd_command(tp, cmd):
    """Type one command into an interactive testpmd."""
    try:
        tp.stdin.write((cmd + "\n").encode())
        tp.stdin.flush()
    except OSError as e:
        raise CaseFailed("testpmd gone before '%s': %s" % (cmd, e)) from e


def testpmd_wait_forwarding(ctx, p, timeout=30):
    """Wait until testpmd has started forwarding."""
    # Non-interactive testpmd says "start packet forwarding"; interactive with
    # --auto-start starts it silently before its first prompt.
    ok = wait_for(lambda: re.search(r"start packet forwarding|Auto-start selected(.|\n)*testpmd> ",
                                    read_log(p)) or p.poll() is not None, timeout)
    if not ok or p.poll() is not None:
        raise CaseFailed("testpmd did not start forwarding:\n" + read_log(p)[-3000:])


def fwd_stats(text):
    """The final 'Forward statistics for port 0' block as a dict."""
    i = text.rfind("Forward statistics for port 0")
    if i < 0:
        raise CaseFailed("no testpmd forward statistics:\n" + text[-3000:])
    block = text[i:i + 600]
    return {k: int(v) for k, v in re.findall(r"((?:RX|TX)-(?:packets|dropped|total)):\s+(\d+)",
                                              block)}


def nic_blocks(text):
    """Every periodic 'NIC statistics for port 0' block, in order."""
    out = []
    for blk in text.split("NIC statistics for port 0")[1:]:
        blk = blk.split("Throughput")[0]
        out.append({k: int(v) for k, v in re.findall(r"((?:RX|TX)-(?:packets|bytes)):\s+(\d+)",
                                                     blk)})
    return out


def start_pair(ctx, sock, fwd_mode, fwd_args, tp_mode, cfg, tp_extra=(), interactive=False):
    """Start vhk-fwd and testpmd in the order the socket roles need."""
    q = cfg.get("queues", 1)
    args = list(fwd_args) + (["--queues", str(q)] if q > 1 else [])
    if cfg.get("server"):
        tp = testpmd_start(ctx, sock, tp_mode, cfg, tp_extra, interactive=interactive)
        wait_socket(sock, 30)
        fwd = start_fwd(ctx, sock, fwd_mode, "--client", *args)
    else:
        fwd = start_fwd(ctx, sock, fwd_mode, *args)
        wait_socket(sock)
        tp = testpmd_start(ctx, sock, tp_mode, cfg, tp_extra, interactive=interactive)
    testpmd_wait_forwarding(ctx, tp)
    return fwd, tp


def stop_testpmd(ctx, tp, peer_gone=False):
    """SIGINT testpmd; return its final forward statistics and full log.

    When vhk-fwd has already closed the socket (peer_gone), testpmd 22.11 dies
    of SIGPIPE while closing its port, after printing the final statistics."""
    rc = ctx.stop(tp, signal.SIGINT, timeout=30)
    text = read_log(tp)
    ok = rc == 0 or (peer_gone and rc == -signal.SIGPIPE)
    ctx.check("testpmd stopped and printed its final statistics",
              ok and "Forward statistics for port 0" in text, "exit status %s" % rc)
    return fwd_stats(text), text


def case_virtio_tx(ctx, cfg):
    """testpmd txonly -> vhk-fwd rxonly: every packet sent arrives, bytes too.

    testpmd runs interactively: "stop" ends its forwarding but keeps the port
    (and the rings) up, so vhk-fwd drains what the last bursts left in the
    ring before "quit" stops the rings (a SIGINT would stop forwarding and
    close the port within a millisecond, racing the drain). With
    cfg["check_bytes"], vhk-fwd compares every frame with txonly_frames()."""
    sock = ctx.path("vhost.sock")
    segs = cfg.get("txpkts", (PKT_LEN,))
    frame_len = sum(segs)
    fwd_args = []
    if cfg.get("check_bytes"):
        for f in txonly_frames(segs):
            fwd_args += ["--expect-frame", f.hex()]
    fwd, tp = start_pair(ctx, sock, "rxonly", fwd_args, "txonly", cfg, interactive=True)
    time.sleep(RUN_SECONDS)
    testpmd_command(tp, "stop")
    wait_for(lambda: "Forward statistics for port 0" in read_log(tp) and "Done." in
             read_log(tp)[read_log(tp).rfind("Forward statistics for port 0"):], 15)
    time.sleep(0.5)  # vhk-fwd drains the ring
    testpmd_command(tp, "quit")
    rc = ctx.stop(tp, signal.SIGINT, timeout=30) if not wait_for(
        lambda: tp.poll() is not None, 30) else tp.returncode
    text = read_log(tp)
    ctx.check("testpmd stopped forwarding, printed its statistics and quit",
              rc == 0 and "Forward statistics for port 0" in text, "exit status %s" % rc)
    st = fwd_stats(text)
    c = fwd_result(ctx, fwd)
    if cfg.get("eal"):
        record_paths(ctx, text)
    sent = st["TX-packets"]  # TX-total minus TX-dropped
    ctx.numbers.update(testpmd_tx=sent, testpmd_tx_dropped=st["TX-dropped"],
                       fwd_rx_packets=c["rx_packets"], fwd_rx_bytes=c["rx_bytes"],
                       fwd_cycles_per_packet=c.get("busy_cycles_per_packet"))
    ctx.check("traffic flowed", sent > 0, "testpmd TX-packets=%d" % sent)
    ctx.check("vhk-fwd rx_packets == testpmd TX-total - TX-dropped", c["rx_packets"] == sent,
              "rx_packets=%d, testpmd %d - %d" % (c["rx_packets"], st["TX-total"],
                                                  st["TX-dropped"]))
    ctx.check("vhk-fwd rx_bytes == packets x %d" % frame_len, c["rx_bytes"] == sent * frame_len,
              "rx_bytes=%d" % c["rx_bytes"])
    broken = [ln for ln in read_log(fwd).splitlines() if "broken" in ln]
    ctx.check("vhk-fwd left the transmit ring up", not broken, "; ".join(broken[:3]))
    if cfg.get("check_bytes"):
        ctx.numbers["fwd_rx_unexpected"] = c.get("rx_unexpected")
        ctx.check("every frame vhk-fwd received is one testpmd sent, byte for byte",
                  c.get("rx_unexpected") == 0, "rx_unexpected=%s of %d" % (
                      c.get("rx_unexpected"), c["rx_packets"]))


def case_virtio_rx(ctx, cfg):
    """vhk-fwd txonly (--duration) -> testpmd rxonly: counts agree exactly."""
    sock = ctx.path("vhost.sock")
    # testpmd's port start discards (uncounted) whatever its receive rings
    # already hold, so vhk-fwd waits a second after the device appears.
    fwd_args = ["--duration", str(RUN_SECONDS + 2), "--start-delay", "1",
                "--pkt-len", str(PKT_LEN)]
    fwd, tp = start_pair(ctx, sock, "txonly", fwd_args, "rxonly", cfg)
    c = fwd_result(ctx, fwd, stop=False)  # ends by itself after --duration
    time.sleep(2.5)  # nothing in flight; one more periodic stats block (every 1-2 s)
    st, text = stop_testpmd(ctx, tp, peer_gone=True)
    nic = nic_blocks(text)
    got = st["RX-packets"]
    ctx.numbers.update(fwd_tx_packets=c["tx_packets"], fwd_tx_bytes=c["tx_bytes"],
                       fwd_dropped=c["dropped"], testpmd_rx=got,
                       fwd_cycles_per_packet=c.get("busy_cycles_per_packet"))
    ctx.check("traffic flowed", got > 0, "testpmd RX-packets=%d" % got)
    ctx.check("testpmd RX-packets == vhk-fwd tx_packets", got == c["tx_packets"],
              "RX-packets=%d tx_packets=%d" % (got, c["tx_packets"]))
    ctx.check("testpmd printed statistics after vhk-fwd stopped", bool(nic))
    if nic:
        ctx.check("testpmd port RX-packets == vhk-fwd tx_packets",
                  nic[-1].get("RX-packets") == c["tx_packets"],
                  "port RX-packets=%s" % nic[-1].get("RX-packets"))
        rxb = nic[-1].get("RX-bytes", -1)
        ctx.check("testpmd RX-bytes == vhk-fwd tx_bytes", rxb == c["tx_bytes"],
                  "RX-bytes=%d tx_bytes=%d" % (rxb, c["tx_bytes"]))


def increasing_periods(ctx, nic, what="RX-packets", need=3):
    """The counter grew in every stats period once traffic started."""
    vals = [b.get(what, 0) for b in nic]
    started = [v for v in vals if v > 0]
    grew = all(b > a for a, b in zip(started, started[1:]))
    ctx.check("%s grew in every stats period" % what, len(started) >= need and grew,
              "periods: %s" % vals)


def case_loopback(ctx, cfg):
    """vhk-fwd mac --tx-first <-> testpmd mac: the loop keeps forwarding."""
    sock = ctx.path("vhost.sock")
    # --start-delay: a tx-first burst that lands before testpmd has started
    # its port would be flushed by testpmd, and the loop would never start.
    fwd, tp = start_pair(ctx, sock, "mac", ["--tx-first", "--start-delay", "1",
                                            "--stats-period", "1"], "mac", cfg)
    time.sleep(RUN_SECONDS + 2)  # testpmd prints its statistics every 1-2 s
    st, text = stop_testpmd(ctx, tp)
    time.sleep(0.5)
    c = fwd_result(ctx, fwd)
    increasing_periods(ctx, nic_blocks(text))
    if cfg.get("eal"):
        record_paths(ctx, text)
    ctx.numbers.update(testpmd_rx=st["RX-packets"], testpmd_tx=st["TX-packets"],
                       fwd_rx_packets=c["rx_packets"], fwd_tx_packets=c["tx_packets"],
                       fwd_cycles_per_packet=c.get("busy_cycles_per_packet"))
    # Once testpmd stops receiving, vhk-fwd may hold back (its enqueue to the
    # full guest RX ring fails): at most one ring per queue stays unconsumed.
    ring = cfg.get("desc", 256) * cfg.get("queues", 1)
    lag = st["TX-packets"] - c["rx_packets"]
    ctx.numbers["unreceived_at_stop"] = lag
    ctx.check("vhk-fwd received what testpmd sent, but for at most one ring in flight",
              0 <= lag <= ring, "rx_packets=%d TX-packets=%d (in flight %d, ring %d)"
              % (c["rx_packets"], st["TX-packets"], lag, ring))
    ctx.check("testpmd RX-packets <= vhk-fwd tx_packets", 0 < st["RX-packets"] <= c["tx_packets"],
              "RX-packets=%d tx_packets=%d" % (st["RX-packets"], c["tx_packets"]))


def case_restart(ctx, cfg):
    """SIGKILL the testpmd frontend mid-traffic, start it again: traffic resumes."""
    sock = ctx.path("vhost.sock")
    fwd, tp = start_pair(ctx, sock, "mac", ["--stats-period", "1"], "mac", cfg, ["--tx-first"])
    time.sleep(RUN_SECONDS - 1)
    first = nic_blocks(read_log(tp))
    ctx.stop(tp, signal.SIGKILL)
    for prefix in ctx.dpdk_prefixes:
        shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
    time.sleep(1)
    ctx.check("vhk-fwd survived the frontend's SIGKILL", fwd.poll() is None,
              "exit status %s" % fwd.returncode)
    ctx.check("traffic before the kill", bool(first) and first[-1].get("RX-packets", 0) > 0,
              "last RX-packets=%s" % (first[-1].get("RX-packets") if first else None))
    tp2 = testpmd_start(ctx, sock, "mac", cfg, ["--tx-first"], log="testpmd2.log")
    testpmd_wait_forwarding(ctx, tp2)
    time.sleep(RUN_SECONDS + 2)  # testpmd prints its statistics every 1-2 s
    st, text = stop_testpmd(ctx, tp2)
    time.sleep(0.5)
    c = fwd_result(ctx, fwd)
    increasing_periods(ctx, nic_blocks(text))
    ctx.numbers.update(testpmd2_rx=st["RX-packets"], testpmd2_tx=st["TX-packets"],
                       fwd_rx_packets=c["rx_packets"], fwd_tx_packets=c["tx_packets"])
    ctx.check("traffic resumed after restart", st["RX-packets"] > 0 and st["TX-packets"] > 0,
              "RX-packets=%d TX-packets=%d" % (st["RX-packets"], st["TX-packets"]))
    ctx.check("vhk-fwd counted both runs", c["rx_packets"] > st["TX-packets"],
              "rx_packets=%d > second run's TX-packets=%d" % (c["rx_packets"], st["TX-packets"]))


MODES = {
    "tx": ("virtio txonly -> vhk-fwd rxonly", case_virtio_tx),
    "rx": ("vhk-fwd txonly -> virtio rxonly", case_virtio_rx),
    "loop": ("mac loopback, vhk-fwd --tx-first", case_loopback),
}


def dpdk_cases():
    """name -> (configuration, function(ctx))."""
    cases = {}
    for mname, (mdesc, fn) in MODES.items():
        for cname, (cdesc, cfg) in CONFIGS.items():
            cases["dpdk-%s-%s" % (mname, cname)] = (
                "%s, %s" % (mdesc, cdesc), lambda c, fn=fn, cfg=cfg: fn(c, cfg))
    for name, (mname, cdesc, cfg) in EXTRA.items():
        mdesc, fn = MODES[mname]
        cases[name] = ("%s, %s" % (mdesc, cdesc), lambda c, fn=fn, cfg=cfg: fn(c, cfg))
    cases["dpdk-restart"] = ("frontend SIGKILLed and restarted, vhk-fwd keeps running (mac)",
                             lambda c: case_restart(c, {}))
    return cases
