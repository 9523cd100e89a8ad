#!/usr/bin/env python3
"""docs/protocol-coverage.md must agree with src/proto/msg_table.def:
every MSG(...) row is "done", every MSG_UNIMPL(...) is "rejected cleanly",
and every message of enum vhost_user_request in msg.h appears in the doc."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
table = (root / "src/proto/msg_table.def").read_text()
msgh = (root / "src/proto/msg.h").read_text()
doc = (root / "docs/protocol-coverage.md").read_text()

impl = set(re.findall(r"^MSG\((\w+),", table, re.M))
unimpl = set(re.findall(r"^MSG_UNIMPL\((\w+)\)", table, re.M))
enum = msgh[msgh.index("enum vhost_user_request"):]
enum = enum[: enum.index("};")]
ids = {n: int(v) for n, v in re.findall(r"VHOST_USER_(\w+) = (\d+)", enum)}
front = doc[doc.index("## Front-end"):doc.index("## Back-end")]
status = {}
for m in re.finditer(r"^\| (\d+) \| ([A-Z_]+) \| ([a-z ]+) \|", front, re.M):
    status[m.group(2)] = m.group(3).strip()

bad = 0
for name, num in ids.items():
    if name in ("NONE", "MAX"):
        continue
    st = status.get(name)
    want = "done" if name in impl else "rejected cleanly" if name in unimpl else None
    if want is None:
        print(f"{name} ({num}) is in msg.h but not in msg_table.def")
        bad += 1
    elif st != want:
        print(f"{name} ({num}): doc says {st!r}, the dispatcher table says {want!r}")
        bad += 1
print(f"{len(ids) - 2} messages checked, {bad} mismatches")
sys.exit(1 if bad else 0)
