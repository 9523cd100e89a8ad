#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz/fuzz_pop_oracle.c into fuzz/corpus/pop_oracle/.

Input format (see the comment at the top of fuzz_pop_oracle.c): a 5-byte
header (config, size, base, split avail-index delta), size descriptors of
6 bytes (addr code, len code, flags, next/id), split: size avail entries,
4 indirect tables of 8 descriptors, then the script (opcode + arguments).

Usage: python3 fuzz/gen_pop_oracle_seeds.py [outdir]
"""
import os
import struct
import sys

NEXT, WRITE, INDIRECT = 1, 2, 4
OTHER_LAP = 1 << 3     # packed: available in the other lap's bits
TABLE = 0x20           # with INDIRECT: point at table (addr code % 4)
NIND, IND_N = 4, 8


def desc(gpa=0, length=0, flags=0, nxt=0, addr_code=None):
    """A descriptor; plain addresses are multiples of 4 (code * 4)."""
    a = gpa // 4 if addr_code is None else addr_code
    return struct.pack('<HHBB', a, length, flags, nxt)


def header(packed, size_code, base, delta=0, indirect=False, in_order=False, event_idx=False,
           iov=0):
    cfg = (1 if packed else 0) | (2 if indirect else 0) | (4 if in_order else 0) | \
        (8 if event_idx else 0) | (iov << 4)
    return struct.pack('<BBHB', cfg, size_code, base, delta)


def tables(entries=None):
    """4 tables of 8 entries; @entries maps table -> list of descriptors."""
    out = b''
    for t in range(NIND):
        e = (entries or {}).get(t, [])
        e = e + [desc()] * (IND_N - len(e))
        out += b''.join(e)
    return out


# Script opcodes (fuzz_pop_oracle.c run()).
def burst(want, use, half=0):
    return bytes([0, want - 1, use, half])


def pop(write_len=1):
    return bytes([2, write_len])


def push_oldest(fast=False):
    return bytes([4 | (0x10 if fast else 0)])


def push_at(i, fast=False):
    return bytes([5 | (0x10 if fast else 0), i])


def rewind(k):
    return bytes([6, k - 1])


def count(m, flush=False):
    return bytes([7 | (0x10 if flush else 0), m])


def flush():
    return count(0, True)


R1 = 0x10000          # region 1
R2 = 0x30000          # region 2 (behind the hole at 0x20000)
BUF = 0x4000          # buffers in region 0, after the rings


def seeds():
    s = {}
    # Split, 8 one-piece writable buffers: a burst takes them all; the last
    # one ends exactly at the end of region 0.
    d = b''.join(desc(BUF + i * 0x800, 1500, WRITE) for i in range(7))
    d += desc(R1 - 0x100, 0x100, WRITE)
    avail = bytes(range(8))
    ops = burst(8, 8) + flush() + burst(4, 2) + pop() + push_oldest(True) + flush()
    s['split_simple'] = header(False, 3, 0, 8) + d + avail + tables() + ops
    # Split near the 16-bit wrap: chains, an indirect table, a buffer across
    # regions 0/1, one in region 2, a zero-length one, a readable one.
    d = [desc(BUF, 64, NEXT, 1), desc(BUF + 0x100, 1400, WRITE, 0),
         desc(addr_code=0, length=3, flags=INDIRECT | TABLE),
         desc(R1 - 0x80, 0x200, WRITE),
         desc(R2 + 0x40, 2048, WRITE),
         desc(BUF + 0x900, 0, WRITE),
         desc(BUF + 0xa00, 60, 0),
         desc(BUF + 0xb00, 100, WRITE | NEXT, 8)]
    d += [desc(BUF + 0x1000 + i * 0x100, 200, WRITE) for i in range(8)]
    avail = bytes([0, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 1, 8])
    tab = {0: [desc(R1 + 0x1000, 30, 0), desc(R1 + 0x2000, 40, WRITE), desc(R1 + 0x3000, 50, WRITE)]}
    ops = (burst(4, 1) + pop() + pop() + pop() + rewind(2) + burst(8, 8, 1) + pop() +
           push_at(1) + push_oldest() + count(16) + flush() + burst(16, 3) + pop() + pop() +
           rewind(1) + flush())
    s['split_mixed'] = header(False, 4, 65530, 12, indirect=True) + b''.join(d) + avail + \
        tables(tab) + ops
    # Split IN_ORDER, read-only one-piece chains used with length 0: one batch entry.
    d = b''.join(desc(BUF + i * 0x100, 80, 0) for i in range(16))
    avail = bytes(range(16))
    ops = burst(16, 16) + flush() + pop(0) + pop(0) + push_oldest(True) + push_oldest() + flush()
    s['split_in_order'] = header(False, 4, 100, 16, in_order=True, event_idx=True) + d + avail + \
        tables() + ops
    # Split with a bad head and a head given twice.
    d = b''.join(desc(BUF + i * 0x100, 80, WRITE) for i in range(8))
    avail = bytes([0, 1, 2, 2, 9, 3, 4, 5])
    s['split_hostile'] = header(False, 3, 7, 8) + d + avail + tables() + burst(8, 8) + pop() + \
        pop() + flush()
    # Packed, 8 slots starting at 6 in lap 1: the burst crosses the wrap; one
    # buffer ends exactly at the end of region 0.
    d = b''.join(desc(BUF + i * 0x800, 1500, WRITE, i) for i in range(7))
    d += desc(R1 - 0x200, 0x200, 0, 7)
    ops = burst(8, 8) + flush() + burst(3, 1) + pop() + flush()
    s['packed_wrap'] = header(True, 7, 0x8000 | 6) + d + tables() + ops
    # Packed IN_ORDER + INDIRECT: a chain of two slots, an indirect table
    # across regions, a buffer across regions, one in the other lap.
    d = [desc(BUF, 12, NEXT, 9), desc(BUF + 0x100, 500, 0, 3),
         desc(addr_code=2, length=4, flags=INDIRECT | TABLE, nxt=4),
         desc(R1 - 0x40, 0x100, 0, 5),
         desc(BUF + 0x200, 60, 0, 6),
         desc(BUF + 0x300, 60, OTHER_LAP, 7),
         desc(BUF + 0x400, 60, 0, 8), desc(BUF + 0x500, 60, 0, 0)]
    d += [desc(BUF + 0x600 + i * 0x100, 60, 0, 10 + i) for i in range(8)]
    tab = {2: [desc(R2 + 0x100, 20, 0), desc(R2 + 0x200, 30, 0), desc(R2 + 0x300, 40, WRITE),
               desc(R2 + 0x400, 50, WRITE)]}
    ops = (pop(0) + burst(8, 8) + pop(0) + burst(4, 2) + push_oldest(True) + flush() +
           rewind(1) + pop(0) + count(16) + flush())
    s['packed_in_order'] = header(True, 15, 0x8000, indirect=True, in_order=True) + \
        b''.join(d) + tables(tab) + ops
    # Packed, two pieces of storage only: a three-piece chain is -E2BIG; an id used twice.
    d = [desc(BUF, 10, NEXT, 0), desc(BUF + 0x100, 10, NEXT | WRITE, 0),
         desc(BUF + 0x200, 10, WRITE, 2), desc(BUF + 0x300, 70, WRITE, 3),
         desc(BUF + 0x400, 70, WRITE, 3), desc(BUF + 0x500, 70, WRITE, 5)]
    ops = pop() + burst(4, 1) + pop() + flush()
    s['packed_small_iov'] = header(True, 5, 0x8000, iov=2) + b''.join(d) + tables() + ops
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                            'corpus', 'pop_oracle')
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
