#!/usr/bin/env python3
"""Every function declared in a public header must have a doc comment
(a /** ... */ block, or a /**< */ trailing one) right before it."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bad = 0
count = 0
for h in sorted((root / "include" / "vhostkit").glob("*.h")):
    text = h.read_text()
    # Declarations and static inline definitions of vhk_* functions at file scope.
    for m in re.finditer(r"^(?:static inline )?[a-z_][a-z0-9_ ]*[ *]+(vhk_[a-z0-9_]+)\(", text, re.M):
        name = m.group(1)
        count += 1
        before = text[: m.start()].rstrip()
        if not before.endswith("*/"):
            print(f"{h.name}: {name}: no doc comment")
            bad += 1
            continue
        start = before.rfind("/*")
        if not before[start:].startswith("/**"):
            print(f"{h.name}: {name}: comment before it is not a doc comment (/**)")
            bad += 1
print(f"{count} public functions checked, {bad} without doc comment")
sys.exit(1 if bad or count == 0 else 0)
