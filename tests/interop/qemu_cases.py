# SPDX-License-Identifier: MIT
"""QEMU cases: a Linux guest (TCG) pings vhk-fwd --mode echo over vhost-user,
or reads its entropy device served by vhk-rng (vhost-user-rng-pci).

The guest's /init (guest-init.sh) prints VHK-PING, VHK-RNG and VHK-DONE
markers on the serial console, which QEMU writes to a log file that is polled
here.
"""
import re
import time

import guest
from common import (fwd_result, read_log, rng_result, rng_stream, start_fwd, start_rng,
                    wait_for, wait_socket)

MAC = "52:54:00:12:34:56"
FEATURE_NAMES = {3: "MTU", 15: "MRG_RXBUF", 29: "RING_EVENT_IDX", 22: "MQ", 32: "VERSION_1", 34: "RING_PACKED"}
PING_RE = re.compile(r"VHK-PING size=(\d+) cpu=(\S+) sent=(\d+) received=(\d+)")


def qemu_base_argv(kernel, initrd, devices, smp=1, reboot=False, append=""):
    """The QEMU command line of interop.md around the case's device arguments."""
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512",
            "-smp", str(smp), "-nographic", "-no-user-config", "-nodefaults",
            "-serial", "stdio", "-display", "none",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-numa", "node,memdev=mem"] + devices + [
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1 " + append]
    if not reboot:
        argv.append("-no-reboot")
    return argv


def qemu_argv(kernel, initrd, sock, smp=1, queues=1, server=False, reboot=False,
              dev_opts="", append=""):
    """QEMU with a vhost-user virtio-net device, with the case's variations."""
    chardev = "socket,id=c0,path=" + sock + (",server=on,wait=off" if server else "")
    netdev = "vhost-user,id=n0,chardev=c0" + (",queues=%d" % queues if queues > 1 else "")
    device = "virtio-net-pci,netdev=n0,mac=%s,vectors=0%s" % (MAC, dev_opts)
    return qemu_base_argv(kernel, initrd, ["-chardev", chardev, "-netdev", netdev,
                                           "-device", device], smp, reboot, append)


def parse_rounds(text):
    """(size, cpu, sent, received) of every ping round on the console."""
    return [(int(a), b, int(c), int(d)) for a, b, c, d in PING_RE.findall(text)]


def check_rounds(ctx, rounds, expect):
    """Every expected round happened and every echo request was answered."""
    ctx.check("guest ran %d ping rounds" % expect, len(rounds) == expect,
              "got %d" % len(rounds))
    for size, cpu, sent, recv in rounds:
        ctx.check("ping size=%d cpu=%s: every reply seen" % (size, cpu),
                  sent > 0 and recv == sent, "sent=%d received=%d" % (sent, recv))


def check_features(ctx, text, expect):
    """The guest negotiated (1) or not (0) each virtio feature bit in expect."""
    for bits in re.findall(r"VHK-NET .*features=([01]+)", text):
        for bit, want in sorted(expect.items()):
            have = int(bits[bit]) if bit < len(bits) else 0
            ctx.check("guest feature bit %d (%s) is %d" % (bit, FEATURE_NAMES[bit], want),
                      have == want, "features=%s" % bits)


def run_qemu_case(ctx, count=5, sizes=(56, 1400), smp=1, queues=1, server=False,
                  reboots=0, dev_opts="", features=None, mtu=None):
    """Boot the guest against vhk-fwd --mode echo and check both sides."""
    kernel, initrd, version = ctx.guest or guest.ensure_guest(ctx.build_dir)
    ctx.numbers["kernel"] = version
    sock = ctx.path("vhost.sock")
    fwd_args = ["--stats-period", "1"]
    if queues > 1:
        fwd_args += ["--queues", str(queues)]
    append = "vhk.ip=10.0.0.2 vhk.peer=10.0.0.1 vhk.count=%d vhk.sizes=%s" % (
        count, ",".join(map(str, sizes)))
    cpus = list(range(smp)) if queues > 1 else []
    if cpus:
        append += " vhk.cpus=" + ",".join(map(str, cpus))
    if reboots:
        append += " vhk.reboot=1"
    if mtu:
        append += " vhk.mtu=%d" % mtu
    argv = qemu_argv(kernel, initrd, sock, smp, queues, server, reboots > 0, dev_opts, append)
    t0 = time.monotonic()
    if server:
        qemu = ctx.start(argv, "console.log")
        wait_socket(sock)
        fwd = start_fwd(ctx, sock, "echo", "--client", *fwd_args)
    else:
        fwd = start_fwd(ctx, sock, "echo", *fwd_args)
        wait_socket(sock)
        qemu = ctx.start(argv, "console.log")
    boots = reboots + 1
    done = wait_for(lambda: read_log(qemu).count("VHK-DONE") >= boots or qemu.poll() is not None,
                    60 * boots + 60, step=0.25)
    text = read_log(qemu)
    if text.count("VHK-DONE") >= boots and reboots:
        ctx.stop(qemu)  # the guest would keep rebooting
    else:
        wait_for(lambda: qemu.poll() is not None, 20)
        ctx.stop(qemu)
    ctx.numbers["guest_seconds"] = round(time.monotonic() - t0, 1)
    counters = fwd_result(ctx, fwd)
    ctx.check("guest finished (%d boot(s))" % boots, done and text.count("VHK-DONE") >= boots,
              "VHK-DONE seen %d time(s)" % text.count("VHK-DONE"))
    ctx.check("no guest errors", "VHK-ERROR" not in text,
              "; ".join(re.findall(r"VHK-ERROR.*", text)))
    if reboots:
        ctx.check("guest rebooted", text.count("VHK-BOOT") >= boots,
                  "VHK-BOOT seen %d time(s)" % text.count("VHK-BOOT"))
    net = re.findall(r"VHK-NET .*rxq=(\d+) txq=(\d+)", text)
    if queues > 1:
        ctx.check("guest sees %d queue pairs" % queues,
                  bool(net) and all(int(r) == queues and int(t) == queues for r, t in net),
                  str(net))
    if mtu:
        got = re.findall(r"VHK-NET .*mtu=(\d+)", text)
        ctx.check("guest eth0 MTU is %d" % mtu, bool(got) and all(int(m) == mtu for m in got),
                  str(got))
    check_features(ctx, text, features or {})
    rounds = parse_rounds(text)
    check_rounds(ctx, rounds, len(sizes) * max(1, len(cpus)) * boots)
    sent = sum(r[2] for r in rounds)
    recv = sum(r[3] for r in rounds)
    ctx.numbers.update(pings_sent=sent, pings_received=recv,
                       fwd_rx_packets=counters["rx_packets"],
                       fwd_tx_packets=counters["tx_packets"],
                       fwd_dropped=counters["dropped"])
    ctx.check("vhk-fwd rx_packets >= echo requests sent", counters["rx_packets"] >= sent,
              "rx_packets=%d sent=%d" % (counters["rx_packets"], sent))
    ctx.check("vhk-fwd tx_packets >= echo replies received", counters["tx_packets"] >= recv,
              "tx_packets=%d received=%d" % (counters["tx_packets"], recv))
    min_bytes = sum(r[2] * (r[0] + 42) for r in rounds)  # ICMP payload + 8 + IP 20 + Ethernet 14
    ctx.check("vhk-fwd rx_bytes covers the echo requests", counters["rx_bytes"] >= min_bytes,
              "rx_bytes=%d >= %d" % (counters["rx_bytes"], min_bytes))
    if server:
        ctx.check("vhk-fwd saw one device", counters.get("devices", 1) >= 1,
                  "devices=%s" % counters.get("devices"))


RNG_SEED = 0x5eed2026
RNG_READ = 512      # bytes the guest reads from /dev/hwrng in one read()
RNG_CHUNK = 64      # the hwrng core reads the device in chunks of this size (SMP_CACHE_BYTES)
RNG_RE = re.compile(r"VHK-RNG bytes=(\d+) hex=([0-9a-f]*)")


def locate_chunks(stream, data, chunk):
    """Offsets in stream of each chunk-sized piece of data, searched in order
    after the previous one; None for a piece that is not there."""
    offs, start = [], 0
    for i in range(0, len(data), chunk):
        at = stream.find(data[i:i + chunk], start)
        offs.append(at if at >= 0 else None)
        if at >= 0:
            start = at + len(data[i:i + chunk])
    return offs


def run_rng_case(ctx, packed=False):
    """Boot the guest against vhk-rng --seed and check every byte it reads.

    The guest's virtio_rng driver keeps one 64-byte buffer posted and hands
    out the device's bytes in order; the hwrng core reads it 64 bytes at a
    time, for a reader of /dev/hwrng and for its own entropy thread alike,
    after one early read of 0 or 32 bytes when the device registers. So the
    guest's read is a sequence of 64-byte windows of the stream, in stream
    order, starting at a multiple of 32 and 64 bytes apart or a whole number
    of 64-byte kernel reads further; the device must have served at least up
    to the end of the last window. (A generator off by a block would still be
    found, shifted by 8 bytes: the alignment catches it.)"""
    kernel, initrd, version = ctx.guest or guest.ensure_guest(ctx.build_dir)
    ctx.numbers["kernel"] = version
    sock = ctx.path("rng.sock")
    rng = start_rng(ctx, sock, "--seed", str(RNG_SEED))
    wait_socket(sock)
    device = "vhost-user-rng-pci,chardev=c0,vectors=0" + (",packed=on" if packed else "")
    argv = qemu_base_argv(kernel, initrd, ["-chardev", "socket,id=c0,path=" + sock,
                                           "-device", device],
                          append="vhk.rng=%d" % RNG_READ)
    t0 = time.monotonic()
    qemu = ctx.start(argv, "console.log")
    done = wait_for(lambda: "VHK-DONE" in read_log(qemu) or qemu.poll() is not None, 120,
                    step=0.25)
    wait_for(lambda: qemu.poll() is not None, 20)
    ctx.stop(qemu)
    ctx.numbers["guest_seconds"] = round(time.monotonic() - t0, 1)
    c = rng_result(ctx, rng)
    text = read_log(qemu)
    ctx.check("guest finished", done and "VHK-DONE" in text)
    ctx.check("no guest errors", "VHK-ERROR" not in text,
              "; ".join(re.findall(r"VHK-ERROR.*", text)))
    dev = re.search(r"VHK-RNG-DEV current=(\S*) features=([01]*)", text)
    ctx.check("the guest's hwrng is virtio_rng", bool(dev) and dev.group(1).startswith("virtio_rng"),
              dev.group(0) if dev else "no VHK-RNG-DEV line")
    bits = dev.group(2) if dev else ""
    have = int(bits[34]) if len(bits) > 34 else 0
    ctx.check("guest feature bit 34 (RING_PACKED) is %d" % packed, have == int(packed),
              "features=%s" % bits)
    m = RNG_RE.search(text)
    data = bytes.fromhex(m.group(2)) if m else b""
    ctx.check("guest read %d bytes from /dev/hwrng" % RNG_READ, len(data) == RNG_READ,
              "got %d" % len(data))
    served = c["stream_bytes"]
    ctx.numbers.update(rng_requests=c["requests"], rng_bytes=c["bytes"], rng_read=len(data))
    ctx.check("vhk-rng exited 0 on SIGINT", c["exit_status"] == 0, "exit %s" % c["exit_status"])
    ctx.check("vhk-rng: every byte served came from the seeded stream",
              c["bytes"] == served and c["devices"] == 1,
              "bytes=%d stream_bytes=%d devices=%d" % (c["bytes"], served, c["devices"]))
    ctx.check("vhk-rng filled every request completely (%d-byte buffers)" % RNG_CHUNK,
              c["requests"] > 0 and c["bytes"] == RNG_CHUNK * c["requests"],
              "requests=%d bytes=%d" % (c["requests"], c["bytes"]))
    offs = locate_chunks(rng_stream(RNG_SEED, served), data, RNG_CHUNK) if data else [None]
    found = all(o is not None for o in offs)
    aligned = found and offs[0] % 32 == 0 and all((o - offs[0]) % RNG_CHUNK == 0 for o in offs)
    gaps = sum(1 for a, b in zip(offs, offs[1:]) if found and b != a + RNG_CHUNK)
    end = offs[-1] + RNG_CHUNK if found else 0
    ctx.numbers.update(rng_window_offset=offs[0] if found else None, rng_gaps=gaps)
    ctx.check("every %d-byte piece the guest read is at its place in the stream, in order, "
              "at the hwrng core's read boundaries" % RNG_CHUNK, found and aligned,
              "offsets %s (stream_bytes=%d)" % (offs, served))
    ctx.check("vhk-rng served at least up to the end of what the guest read", found and end <= served,
              "window [%s, %d), %d gap(s), stream_bytes=%d"
              % (offs[0] if found else "?", end, gaps, served))


def qemu_cases():
    """name -> (configuration, function(ctx))."""
    def case(**kw):
        return lambda c: run_qemu_case(c, **kw)
    return {
        "qemu-ping": ("split ring, 1 queue pair, mrg_rxbuf=on, 56 and 1400 byte pings",
                      case(features={15: 1, 32: 1, 34: 0})),
        "qemu-mq": ("mq=on, 2 queue pairs (-smp 2), pings pinned to each vCPU",
                    case(smp=2, queues=2, dev_opts=",mq=on", features={22: 1})),
        "qemu-mrg-off": ("mrg_rxbuf=off", case(dev_opts=",mrg_rxbuf=off", features={15: 0})),
        "qemu-packed": ("packed=on (packed virtqueues)",
                        case(dev_opts=",packed=on", features={34: 1})),
        "qemu-server": ("QEMU is the socket server (server=on,wait=off), vhk-fwd --client",
                        case(server=True)),
        "qemu-packed-mq": ("packed=on,mq=on, 2 queue pairs (-smp 2), pings pinned to each vCPU",
                           case(smp=2, queues=2, dev_opts=",packed=on,mq=on",
                                features={22: 1, 34: 1})),
        "qemu-event-idx-off": ("event_idx=off (no used/avail event suppression)",
                               case(dev_opts=",event_idx=off", features={29: 0})),
        "qemu-mtu9000": ("host_mtu=9000, guest MTU 9000, mrg_rxbuf=on, 8000 byte pings",
                         case(dev_opts=",host_mtu=9000,mrg_rxbuf=on", sizes=(8000,), mtu=9000,
                              features={3: 1, 15: 1})),
        "qemu-reboot": ("guest reboot: ping, reboot, ping again", case(count=3, reboots=1)),
        "qemu-rng": ("vhost-user-rng-pci served by vhk-rng --seed (split ring): the guest's "
                     "/dev/hwrng bytes checked against the stream",
                     lambda c: run_rng_case(c, packed=False)),
        "qemu-rng-packed": ("vhost-user-rng-pci,packed=on served by vhk-rng --seed: the guest's "
                            "/dev/hwrng bytes checked against the stream",
                            lambda c: run_rng_case(c, packed=True)),
    }
