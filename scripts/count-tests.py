#!/usr/bin/env python3
"""Count test results from one or more meson testlog.json files.

A TAP test contributes one result per test point ("ok"/"not ok" line);
any other test contributes one result. A TAP test that failed without
reporting a failing point (crash, timeout) adds one failure.
Prints "PASSED FAILED" and the names of failures on stderr.
"""
import json
import re
import sys

passed = failed = 0
for path in sys.argv[1:]:
    prefix = path.split("/")[0]
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            res = t.get("result", "")
            name = t.get("name", "?")
            out = t.get("stdout", "") or ""
            points = re.findall(r"^(not ok|ok)\b.*$", out, re.M)
            if points:
                p = sum(1 for x in points if x == "ok")
                q = len(points) - p
                passed += p
                failed += q
                for m in re.finditer(r"^not ok .*$", out, re.M):
                    print(f"FAILED [{prefix}] {name}: {m.group(0)}", file=sys.stderr)
                if res not in ("OK", "EXPECTEDFAIL", "SKIP") and q == 0:
                    failed += 1
                    print(f"FAILED [{prefix}] {name}: {res}", file=sys.stderr)
            else:
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    pass
                else:
                    failed += 1
                    print(f"FAILED [{prefix}] {name}: {res}", file=sys.stderr)
print(passed, failed)
