#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz/fuzz_inflight.c into fuzz/corpus/inflight/.

Input format (see the comment at the top of fuzz_inflight.c): an 8-byte
header (size code, flags, base, region length R), R bytes of the inflight
region, then guest memory from gpa 0 (the ring at 0, buffers above).

Seeds: a fresh region on a split and on a packed ring with requests
waiting; regions left by a crash with requests in flight (split: a
published batch still marked, to be rolled forward; packed: chains
completed out of order whose used entries overwrote ring slots of chains
still in flight, and a batch whose first flags reached the ring, to be
committed).

Usage: python3 fuzz/gen_inflight_seeds.py [outdir]
"""
import os
import struct
import sys

NEXT, WRITE = 1, 2
AVAIL, USED = 1 << 7, 1 << 15
BUF = 0x1000


def header(size_code, packed=False, indirect=False, event_idx=False, pattern=0, base=0,
           region=b''):
    flags = (1 if packed else 0) | (2 if indirect else 0) | (4 if event_idx else 0) | (pattern << 4)
    return struct.pack('<BBIH', size_code, flags, base, len(region)) + region


def split_region(n, used_idx=0, lbh=0, descs=None):
    """QueueRegionSplit: descs maps head -> (inflight, next, counter)."""
    out = struct.pack('<QHHHH', 0, 1, n, lbh, used_idx)
    for i in range(n):
        inflight, nxt, counter = (descs or {}).get(i, (0, 0, 0))
        out += struct.pack('<B5xHQ', inflight, nxt, counter)
    return out


def packed_region(n, free_head, old_free_head, used_idx, old_used_idx, wrap, old_wrap, entries):
    """QueueRegionPacked: entries maps index -> dict of DescStatePacked fields."""
    out = struct.pack('<QHHHHHHBB7x', 0, 1, n, free_head, old_free_head, used_idx, old_used_idx,
                      wrap, old_wrap)
    out += b'\0' * (32 - len(out))
    for i in range(n):
        e = entries.get(i, {})
        out += struct.pack('<BxHHHQHHIQ', e.get('inflight', 0), e.get('next', i + 1),
                           e.get('last', 0), e.get('num', 0), e.get('counter', 0),
                           e.get('id', 0), e.get('flags', 0), e.get('len', 0), e.get('addr', 0))
    return out


class Mem:
    """Guest memory image from gpa 0."""

    def __init__(self):
        self.b = bytearray(0x4000)

    def put(self, gpa, data):
        self.b[gpa:gpa + len(data)] = data


def split_ring(n, chains, avail, used_idx=0):
    """chains: head -> list of (len, write); two-descriptor chains use head + n // 2."""
    m = Mem()
    avail_gpa = 16 * n
    used_gpa = (avail_gpa + 6 + 2 * n + 2 + 3) & ~3
    for head, bufs in chains.items():
        idx = head
        for k, (ln, wr) in enumerate(bufs):
            nxt = head + n // 2 if k + 1 < len(bufs) else 0
            fl = (NEXT if k + 1 < len(bufs) else 0) | (WRITE if wr else 0)
            m.put(16 * idx, struct.pack('<QIHH', BUF + 0x100 * idx, ln, fl, nxt))
            idx = nxt
    m.put(avail_gpa, struct.pack('<HH', 0, len(avail)) +
          b''.join(struct.pack('<H', h) for h in avail))
    m.put(used_gpa, struct.pack('<HH', 0, used_idx))
    return bytes(m.b)


def pk_desc(addr, ln, bid, flags):
    return struct.pack('<QIHH', addr, ln, bid, flags)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                             'corpus', 'inflight')
    os.makedirs(out, exist_ok=True)
    seeds = {}
    n = 8
    two = [(16, False), (32, True)]

    # Split, fresh region: four requests waiting.
    seeds['split_fresh'] = header(3, event_idx=True, pattern=1) + \
        split_ring(n, {0: two, 1: two, 2: two, 3: two}, [2, 0, 3, 1])
    # Split, heads 1 and 3 in flight (3 popped first), 0 and 2 new in the ring.
    seeds['split_live'] = header(3, pattern=2, base=0,
                                 region=split_region(n, descs={1: (1, 0, 5), 3: (1, 0, 4)})) + \
        split_ring(n, {0: two, 1: two, 2: two, 3: two}, [3, 1, 0, 2])
    # Split, a batch (heads 2 then 0) published before the crash but still marked: rolled forward.
    seeds['split_batch'] = header(3, pattern=3, base=2, region=split_region(
        n, used_idx=0, lbh=0, descs={0: (1, 2, 1), 2: (1, 1, 3), 1: (1, 0, 2)})) + \
        split_ring(n, {0: two, 1: two, 2: two, 3: two}, [0, 1, 2, 3], used_idx=2)

    # Packed, fresh region: chains of 1, 2 and 3 descriptors available in lap 1.
    m = Mem()
    slot = 0
    for bid, cnt in ((0, 1), (1, 2), (2, 3)):
        for k in range(cnt):
            fl = AVAIL | (NEXT if k + 1 < cnt else 0) | (WRITE if k + 1 == cnt else 0)
            m.put(16 * slot, pk_desc(BUF + 0x100 * slot, 24, bid, fl))
            slot += 1
    seeds['packed_fresh'] = header(7, packed=True, event_idx=True, pattern=1,
                                   base=0x80008000) + bytes(m.b)

    # Packed after a crash: chains 0 (slots 0-1) and 2 (slots 3-4) in flight, chain 1 (slot 2)
    # completed: its used entry overwrote slot 0. Free list 2 -> 5 -> 6 -> 7.
    ents = {
        0: dict(inflight=1, next=1, last=1, num=2, counter=1, id=0, flags=AVAIL | NEXT, len=24,
                addr=BUF),
        1: dict(next=2, id=0, flags=AVAIL | WRITE, len=24, addr=BUF + 0x100),
        2: dict(next=5, id=1, flags=AVAIL | WRITE, len=24, addr=BUF + 0x200),
        3: dict(inflight=1, next=4, last=4, num=2, counter=3, id=2, flags=AVAIL | NEXT, len=24,
                addr=BUF + 0x300),
        4: dict(next=5, id=2, flags=AVAIL | WRITE, len=24, addr=BUF + 0x400),
    }
    m = Mem()
    m.put(0, pk_desc(0, 0, 1, AVAIL | USED))
    m.put(16, pk_desc(BUF + 0x100, 24, 0, AVAIL | WRITE))
    m.put(32, pk_desc(BUF + 0x200, 24, 1, AVAIL | WRITE))
    m.put(48, pk_desc(BUF + 0x300, 24, 2, AVAIL | NEXT))
    m.put(64, pk_desc(BUF + 0x400, 24, 2, AVAIL | WRITE))
    m.put(80, pk_desc(BUF + 0x500, 24, 3, AVAIL | WRITE))  # a new chain at the avail position
    region = packed_region(n, 2, 2, 1, 1, 1, 1, ents)
    seeds['packed_live'] = header(7, packed=True, pattern=2, base=0x80008000, region=region) + \
        bytes(m.b)
    # The same, but the crash came after chain 1's used flags were stored and before the
    # region's old_* fields followed: committed at restart.
    region = packed_region(n, 2, 5, 1, 0, 1, 1, {**ents, 2: dict(
        inflight=1, next=5, last=2, num=1, counter=2, id=1, flags=AVAIL | WRITE, len=24,
        addr=BUF + 0x200)})
    seeds['packed_commit'] = header(7, packed=True, pattern=3, base=0x80008000,
                                    region=region) + bytes(m.b)

    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    print(f'{len(seeds)} seeds in {out}')


if __name__ == '__main__':
    main()
