#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Symbol-level layer check: what each layer's archive needs from which.

tools/check-layers.sh reads #include lines; this reads the built objects.
For every layer archive (src/<layer>/libvhk_<layer>.a) it lists the
symbols the archive uses but does not define (nm -u), finds the layer
archive that defines each, and fails on any edge the layer rule
(docs/architecture.md) does not allow -- e.g. net calling a function
defined in proto, which include checks miss when the prototype is
declared locally. Apps and examples must take from the library only
symbols it exports (the public API), whatever they include.

  check-layer-symbols.py BUILD_DIR
"""
import os
import subprocess
import sys

ALLOWED = {
    "util": set(),
    "transport": {"util"},
    "mem": {"util"},
    "vq": {"util", "mem"},
    "core": {"util", "transport", "mem", "vq"},
    "net": {"util", "mem", "vq", "core"},
    "proto": {"util", "transport", "mem", "vq", "core"},
}
# Programs built on the public API: their own objects, by meson target directory.
PROGRAMS = ["apps/vhk-fwd/vhk-fwd.p", "apps/vhk-rng/vhk-rng.p", "examples/net-echo.p"]


def nm(args, path):
    """Symbol names printed by nm with @args for @path (archive or object)."""
    out = subprocess.run(["nm", "--format=posix"] + args + [path], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        # "name type [value size]"; archive member headers end with ':'.
        if len(parts) >= 2 and not parts[0].endswith(":"):
            names.add(parts[0])
    return names


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    archives = {}
    for layer in ALLOWED:
        path = os.path.join(build, "src", layer, "libvhk_%s.a" % layer)
        if not os.path.exists(path):
            print("missing %s (build first)" % path)
            return 1
        archives[layer] = path
    defined = {layer: nm(["--defined-only", "--extern-only"], p) for layer, p in archives.items()}
    owner = {}
    for layer, names in defined.items():
        for n in names:
            owner.setdefault(n, set()).add(layer)
    bad = 0
    edges = {}
    for layer, path in archives.items():
        for sym in sorted(nm(["-u"], path) - defined[layer]):
            for other in owner.get(sym, ()):
                edges.setdefault((layer, other), []).append(sym)
                if other not in ALLOWED[layer]:
                    print("layer violation: %s uses %s, defined in %s" % (layer, sym, other))
                    bad = 1
    for name, n in sorted(owner.items()):
        if len(n) > 1:
            print("symbol %s defined in several layers: %s" % (name, ", ".join(sorted(n))))
            bad = 1
    for (a, b), syms in sorted(edges.items()):
        print("%-9s -> %-9s %3d symbols" % (a, b, len(syms)))

    lib = os.path.join(build, "src", "libvhostkit.so")
    exported = nm(["-D", "--defined-only"], lib) if os.path.exists(lib) else None
    internal = set(owner)
    for prog in PROGRAMS:
        d = os.path.join(build, prog)
        if not os.path.isdir(d) or exported is None:
            continue
        objs = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".o")]
        used = set()
        for o in objs:
            used |= nm(["-u"], o)
        hidden = sorted(s for s in used if s in internal and s not in exported)
        for s in hidden:
            print("%s uses %s, which the library does not export" % (prog, s))
            bad = 1
        print("%-28s uses %d library symbols, all exported" % (prog, len(used & internal))
              if not hidden else "")
    print("layer symbols ok" if not bad else "layer symbols: violations found")
    return bad


if __name__ == "__main__":
    sys.exit(main())
