#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz/fuzz_dispatch.c into fuzz/corpus/dispatch/.

Input format (see the comment at the top of fuzz_dispatch.c):
  byte 0: mode (bit 0 cfg device, bit 1 async device ops, bit 2 ops fail,
          bit 3 datapath even while the device is not running)
  records: [fd spec][u16 length LE][bytes]; fd spec low nibble = fd count,
  high nibble bit i = fd i is a memfd (else an eventfd); low nibble 15 =
  guest write: bytes are [u16 offset][data] written into the newest memfd.

Usage: python3 fuzz/gen_dispatch_seeds.py [outdir]
"""
import os
import struct
import sys

# vhost-user requests (src/proto/msg.h)
GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
RESET_OWNER = 4
SET_MEM_TABLE = 5
SET_LOG_BASE = 6
SET_LOG_FD = 7
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
SET_VRING_ERR = 14
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
GET_QUEUE_NUM = 17
SET_VRING_ENABLE = 18
SEND_RARP = 19
NET_SET_MTU = 20
SET_BACKEND_REQ_FD = 21
GET_CONFIG = 24
SET_CONFIG = 25
GET_MAX_MEM_SLOTS = 36
ADD_MEM_REG = 37
REM_MEM_REG = 38
SET_STATUS = 39
GET_STATUS = 40

VERSION = 0x1
NEED_REPLY = 0x8
NOFD = 1 << 8

# feature bits
F_EVENT_IDX = 29
F_PROTOCOL = 30
F_VERSION_1 = 32
F_INDIRECT = 28
F_RING_PACKED = 34
NET_F_MRG_RXBUF = 15
NET_F_MQ = 22
PF_MQ, PF_RARP, PF_REPLY_ACK, PF_NET_MTU, PF_BACKEND_REQ = 0, 2, 3, 4, 5
PF_CONFIG, PF_MEM_SLOTS, PF_STATUS = 9, 15, 16
PF_LOG_SHMFD = 1
F_LOG_ALL = 26

MEMFD_SIZE = 4 * 4096
QVA = 0x7F0000000000
GPA = 0x100000

MODE_NET, MODE_CFG, MODE_ASYNC, MODE_FAIL, MODE_DP_ALWAYS = 0, 1, 2, 4, 8
GUEST_WRITE = 0x0F
VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT = 1, 2, 4

# fd kinds
MEM = "mem"
EVT = "evt"


def bits(*ns):
    v = 0
    for n in ns:
        v |= 1 << n
    return v


def msg(req, payload=b"", flags=VERSION):
    return struct.pack("<III", req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(index, num):
    return struct.pack("<II", index, num)


def region(gpa=GPA, size=MEMFD_SIZE, qva=QVA, off=0):
    return struct.pack("<QQQQ", gpa, size, qva, off)


def mem_table(regions):
    return struct.pack("<II", len(regions), 0) + b"".join(regions)


def vring_addr(q, num=8, log=False):
    base = QVA + q * 0x400
    # index, flags, desc, used, avail, log (the used ring's GPA)
    return struct.pack("<IIQQQQ", q, 1 if log else 0, base, base + 0x200, base + 0x100,
                       GPA + q * 0x400 + 0x200 if log else 0)


def config(offset, size, flags=0, data=None):
    body = data if data is not None else b""
    return struct.pack("<III", offset, size, flags) + body


def record(data, fds=()):
    assert len(fds) <= 9
    spec = len(fds)
    for i, k in enumerate(fds[:4]):
        if k == MEM:
            spec |= 1 << (4 + i)
    return struct.pack("<BH", spec, len(data)) + data


def guest(off, data):
    """Write @data at memfd offset @off (the guest filling its rings)."""
    body = struct.pack("<H", off) + data
    return struct.pack("<BH", GUEST_WRITE, len(body)) + body


def desc(gpa_off, length, flags=0, nxt=0):
    return struct.pack("<QIHH", GPA + gpa_off, length, flags, nxt)


def avail(idx, heads, flags=0):
    return struct.pack("<HH", flags, idx) + b"".join(struct.pack("<H", h) for h in heads)


def guest_tx_rx(q_rx=0, q_tx=1):
    """Ring contents: one 2-descriptor tx packet, two writable rx buffers."""
    rx_base, tx_base = q_rx * 0x400, q_tx * 0x400
    pkt = bytes(12) + bytes(range(60))  # virtio-net header v1 + frame
    return [
        guest(0x2000, pkt),
        guest(tx_base, desc(0x2000, 12, VRING_DESC_F_NEXT, 1) + desc(0x200C, 60)),
        guest(tx_base + 0x100, avail(1, [0])),
        guest(rx_base, desc(0x3000, 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1) +
              desc(0x3040, 960, VRING_DESC_F_WRITE) +
              desc(0x3400, 1024, VRING_DESC_F_WRITE) +
              desc(0x3800, 2048, VRING_DESC_F_WRITE)),
        guest(rx_base + 0x100, avail(3, [0, 2, 3])),
    ]


def negotiate(pf, features):
    """Feature and protocol feature negotiation, with REPLY_ACK asked for."""
    return [
        record(msg(GET_FEATURES)),
        record(msg(SET_FEATURES, u64(features))),
        record(msg(GET_PROTOCOL_FEATURES)),
        record(msg(SET_PROTOCOL_FEATURES, u64(pf), VERSION | NEED_REPLY)),
        record(msg(SET_OWNER)),
    ]


def ring_setup(q, kick=True):
    recs = [
        record(msg(SET_VRING_NUM, state(q, 8), VERSION | NEED_REPLY)),
        record(msg(SET_VRING_ADDR, vring_addr(q), VERSION | NEED_REPLY)),
        record(msg(SET_VRING_BASE, state(q, 0))),
        record(msg(SET_VRING_CALL, u64(q)), [EVT]),
    ]
    if kick:
        recs.append(record(msg(SET_VRING_KICK, u64(q)), [EVT]))
    recs.append(record(msg(SET_VRING_ENABLE, state(q, 1), VERSION | NEED_REPLY)))
    return recs


NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_HOST_TSO4 = 0, 1, 7, 11
NET_FEATURES = bits(F_VERSION_1, F_PROTOCOL, F_EVENT_IDX, F_INDIRECT, NET_F_MRG_RXBUF, NET_F_MQ,
                    NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_HOST_TSO4)
NET_PF = bits(PF_MQ, PF_REPLY_ACK, PF_RARP, PF_NET_MTU, PF_BACKEND_REQ, PF_MEM_SLOTS,
              PF_STATUS)
CFG_FEATURES = bits(F_VERSION_1, F_PROTOCOL, F_EVENT_IDX, F_INDIRECT)
CFG_PF = NET_PF | bits(PF_CONFIG)


def net_bringup():
    recs = [bytes([MODE_NET])] + negotiate(NET_PF, NET_FEATURES)
    recs += [
        record(msg(GET_QUEUE_NUM)),
        record(msg(GET_MAX_MEM_SLOTS)),
        record(msg(SET_MEM_TABLE, mem_table([region()]), VERSION | NEED_REPLY), [MEM]),
    ]
    for q in range(4):
        recs += ring_setup(q)
    recs += [
        record(msg(SET_STATUS, u64(0xF), VERSION | NEED_REPLY)),
        record(msg(GET_STATUS)),
        record(msg(NET_SET_MTU, u64(1500), VERSION | NEED_REPLY)),
        record(msg(SEND_RARP, bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0]))),
        record(msg(GET_VRING_BASE, state(0, 0))),
        record(msg(GET_VRING_BASE, state(1, 0))),
        record(msg(SET_STATUS, u64(0))),
    ]
    return recs


def net_traffic():
    """Bring-up, then the guest posts tx and rx buffers; kicks via eventfd."""
    recs = net_bringup()[:-4]
    recs += guest_tx_rx(0, 1) + guest_tx_rx(2, 3)
    recs += [record(msg(GET_VRING_BASE, state(1, 0))),
             record(msg(SET_MEM_TABLE, mem_table([region()]), VERSION | NEED_REPLY), [MEM])]
    recs += guest_tx_rx(0, 1)
    return recs


def net_indirect():
    """A tx chain through an indirect table."""
    recs = net_bringup()[:-4]
    table = desc(0x2000, 12, VRING_DESC_F_NEXT, 1) + desc(0x200C, 60)
    recs += [guest(0x2000, bytes(72)), guest(0x2800, table),
             guest(0x400, desc(0x2800, 32, VRING_DESC_F_INDIRECT)),
             guest(0x500, avail(1, [0]))]
    return recs


def net_add_mem_reg():
    """Memory through ADD_MEM_REG / REM_MEM_REG (CONFIGURE_MEM_SLOTS)."""
    recs = [bytes([MODE_NET])] + negotiate(NET_PF, NET_FEATURES)
    reg2 = region(gpa=GPA + 0x100000, qva=QVA + 0x100000)
    recs += [
        record(msg(ADD_MEM_REG, u64(0) + region(), VERSION | NEED_REPLY), [MEM]),
        record(msg(ADD_MEM_REG, u64(0) + reg2, VERSION | NEED_REPLY), [MEM]),
    ]
    recs += ring_setup(0) + ring_setup(1)
    recs += [
        record(msg(SET_STATUS, u64(0xF), VERSION | NEED_REPLY)),
        record(msg(REM_MEM_REG, u64(0) + reg2, VERSION | NEED_REPLY)),
        record(msg(REM_MEM_REG, u64(0) + region(), VERSION | NEED_REPLY), [MEM]),
        record(msg(GET_VRING_BASE, state(0, 0))),
    ]
    return recs


def net_legacy():
    """No PROTOCOL_FEATURES: rings enabled at once; NOFD kick (polling)."""
    recs = [bytes([MODE_NET]),
            record(msg(GET_FEATURES)),
            record(msg(SET_FEATURES, u64(bits(F_VERSION_1)))),
            record(msg(SET_MEM_TABLE, mem_table([region()])), [MEM])]
    for q in range(2):
        recs += [
            record(msg(SET_VRING_NUM, state(q, 8))),
            record(msg(SET_VRING_ADDR, vring_addr(q))),
            record(msg(SET_VRING_BASE, state(q, 0))),
            record(msg(SET_VRING_KICK, u64(q | NOFD))),
        ]
    recs += [record(msg(SET_VRING_ERR, u64(0)), [EVT]),
             record(msg(RESET_OWNER)),
             record(msg(GET_VRING_BASE, state(0, 0)))]
    return recs


def net_two_regions():
    """SET_MEM_TABLE with two regions and two memfds in one message."""
    regs = [region(), region(gpa=GPA + 0x10000, qva=QVA + 0x10000)]
    recs = [bytes([MODE_NET])] + negotiate(NET_PF, NET_FEATURES)
    recs += [record(msg(SET_MEM_TABLE, mem_table(regs), VERSION | NEED_REPLY), [MEM, MEM]),
             record(msg(SET_BACKEND_REQ_FD), [EVT])]
    recs += ring_setup(0) + ring_setup(1)
    recs += [record(msg(SET_MEM_TABLE, mem_table([region()]), VERSION | NEED_REPLY), [MEM])]
    return recs


def net_log():
    """Dirty logging as QEMU starts it for a migration, then traffic; a log too small."""
    recs = [bytes([MODE_NET])] + negotiate(NET_PF | bits(PF_LOG_SHMFD), NET_FEATURES)
    recs += [record(msg(SET_MEM_TABLE, mem_table([region()]), VERSION | NEED_REPLY), [MEM])]
    for q in range(2):
        recs += ring_setup(q)
    log = struct.pack("<QQ", 64, 0)  # covers GPA 0 .. 2 MiB
    recs += [
        record(msg(SET_STATUS, u64(0xF), VERSION | NEED_REPLY)),
        record(msg(SET_LOG_BASE, log), [MEM]),
        record(msg(SET_FEATURES, u64(NET_FEATURES | bits(F_LOG_ALL)), VERSION | NEED_REPLY)),
        record(msg(SET_VRING_ADDR, vring_addr(0, log=True), VERSION | NEED_REPLY)),
        record(msg(SET_VRING_ADDR, vring_addr(1, log=True), VERSION | NEED_REPLY)),
        record(msg(SET_LOG_FD), [EVT]),
    ]
    recs += guest_tx_rx(0, 1)
    recs += [record(msg(SET_LOG_BASE, struct.pack("<QQ", 8, 0)), [MEM]),
             record(msg(GET_VRING_BASE, state(0, 0))),
             record(msg(SET_FEATURES, u64(NET_FEATURES), VERSION | NEED_REPLY))]
    return recs


def cfg_device(mode, features=None):
    recs = [bytes([mode])] + negotiate(CFG_PF, features or CFG_FEATURES)
    recs += [
        record(msg(GET_CONFIG, config(0, 16, 0, bytes(16)))),
        record(msg(SET_CONFIG, config(8, 8, 0, b"ABCDEFGH"), VERSION | NEED_REPLY)),
        record(msg(GET_CONFIG, config(4, 60, 0, bytes(60)))),
        record(msg(SET_MEM_TABLE, mem_table([region()]), VERSION | NEED_REPLY), [MEM]),
    ]
    recs += ring_setup(0) + ring_setup(1)
    recs += [
        record(msg(SET_STATUS, u64(0xF), VERSION | NEED_REPLY)),
        record(msg(NET_SET_MTU, u64(9000), VERSION | NEED_REPLY)),
        record(msg(SEND_RARP, bytes(8), VERSION | NEED_REPLY)),
        record(msg(GET_VRING_BASE, state(1, 0))),
        record(msg(SET_VRING_KICK, u64(1)), [EVT]),
        record(msg(GET_VRING_BASE, state(0, 0))),
    ]
    return recs


def batched():
    """Several messages in one record (one sendmsg), fds on the first byte."""
    stream = (msg(GET_FEATURES) + msg(SET_FEATURES, u64(NET_FEATURES)) +
              msg(SET_PROTOCOL_FEATURES, u64(NET_PF)) +
              msg(SET_MEM_TABLE, mem_table([region()])))
    return [bytes([MODE_NET]), record(stream, [MEM]),
            record(msg(GET_VRING_BASE, state(3, 0)))]


def hostile():
    """A few malformed messages: wrong size, too many fds, bad index, bad flags."""
    return [bytes([MODE_NET]),
            record(msg(SET_VRING_NUM, state(200, 8))),
            record(msg(SET_MEM_TABLE, mem_table([region(size=1 << 40)])), [MEM]),
            record(msg(SET_VRING_KICK, u64(0)), [EVT, EVT, EVT]),
            record(msg(SET_VRING_ADDR, vring_addr(0)[:32])),
            record(msg(GET_FEATURES, b"", 0x5)),
            record(struct.pack("<III", GET_FEATURES, VERSION, 4096))]


SEEDS = {
    "net_bringup": net_bringup,
    "net_add_mem_reg": net_add_mem_reg,
    "net_legacy": net_legacy,
    "net_traffic": net_traffic,
    "net_indirect": net_indirect,
    "net_dp_always": lambda: [bytes([MODE_DP_ALWAYS])] + net_traffic()[1:],
    "net_two_regions": net_two_regions,
    "net_log": net_log,
    "cfg_sync": lambda: cfg_device(MODE_CFG),
    "cfg_async": lambda: cfg_device(MODE_CFG | MODE_ASYNC),
    "cfg_async_fail": lambda: cfg_device(MODE_CFG | MODE_ASYNC | MODE_FAIL),
    "cfg_sync_fail": lambda: cfg_device(MODE_CFG | MODE_FAIL),
    "cfg_packed": lambda: cfg_device(MODE_CFG, CFG_FEATURES | bits(F_RING_PACKED)),
    "cfg_packed_async": lambda: cfg_device(MODE_CFG | MODE_ASYNC | MODE_DP_ALWAYS,
                                           CFG_FEATURES | bits(F_RING_PACKED)),
    "batched": batched,
    "hostile": hostile,
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "dispatch")
    os.makedirs(out, exist_ok=True)
    for name, fn in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(fn()))


if __name__ == "__main__":
    main()
