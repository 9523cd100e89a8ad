# SPDX-License-Identifier: MIT
"""QEMU cases: a Linux guest (TCG) pings vhk-fwd --mode echo over vhost-user.

The guest's /init (guest-init.sh) prints VHK-PING and VHK-DONE markers on the
serial console, which QEMU writes to a log file that is polled here.
"""
import re
import time

import guest
from common import fwd_result, read_log, start_fwd, wait_for, wait_socket

MAC = "52:54:00:12:34:56"
FEATURE_NAMES = {3: "MTU", 15: "MRG_RXBUF", 29: "RING_EVENT_IDX", 22: "MQ", 32: "VERSION_1", 34: "RING_PACKED"}
PING_RE = re.compile(r"VHK-PING size=(\d+) cpu=(\S+) sent=(\d+) received=(\d+)")


def qemu_argv(kernel, initrd, sock, smp=1, queues=1, server=False, reboot=False,
              dev_opts="", append=""):
    """The QEMU command line of interop.md, with the case's variations."""
    chardev = "socket,id=c0,path=" + sock + (",server=on,wait=off" if server else "")
    netdev = "vhost-user,id=n0,chardev=c0" + (",queues=%d" % queues if queues > 1 else "")
    device = "virtio-net-pci,netdev=n0,mac=%s,vectors=0%s" % (MAC, dev_opts)
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512",
            "-smp", str(smp), "-nographic", "-no-user-config", "-nodefaults",
            "-serial", "stdio", "-display", "none",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-numa", "node,memdev=mem", "-chardev", chardev, "-netdev", netdev,
            "-device", device, "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet panic=-1 " + append]
    if not reboot:
        argv.append("-no-reboot")
    return argv


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
    kernel, initrd, version = guest.ensure_guest(ctx.build_dir)
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
    }
