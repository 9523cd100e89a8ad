#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fetch a Debian guest kernel and build the interop guest's initramfs.

Nothing is installed on the host: the versioned linux-image package that
`linux-image-amd64` depends on is downloaded with `apt-get download` and
unpacked with `dpkg -x` under BUILD/interop-cache/. The initramfs holds the
static busybox, tests/interop/guest-init.sh as /init and the virtio-net and
virtio-rng modules of that kernel with their dependencies, in load order. Both are built
once and reused while the inputs are unchanged.

Usage: guest.py --build-dir BUILD   (prints the kernel, initrd and version)
"""
import argparse
import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
INIT = os.path.join(HERE, "guest-init.sh")
ROOT_MODULES = ["virtio_pci", "virtio_net", "virtio_rng"]


def log(msg):
    """Say what is being done (the demo shows this to the user)."""
    print("guest: " + msg, file=sys.stderr, flush=True)


def kernel_package():
    """Name of the versioned kernel package behind linux-image-amd64 (None without apt)."""
    if not shutil.which("apt-cache"):
        return None
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                         capture_output=True, text=True, check=False).stdout
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*)", out)
    return m.group(1) if m else None


def download(pkg, dest):
    """apt-get download PKG into DEST, refreshing the package lists once."""
    for attempt in range(2):
        r = subprocess.run(["apt-get", "download", pkg], cwd=dest,
                           capture_output=True, text=True, check=False)
        debs = glob.glob(os.path.join(dest, pkg + "_*.deb"))
        if r.returncode == 0 and debs:
            return debs[0]
        if attempt == 0:
            log("apt-get download failed; running apt-get update")
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
    raise RuntimeError("cannot download %s: %s" % (pkg, r.stderr.strip()))


def kernel_cached(build_dir):
    """True when a guest kernel is already unpacked under BUILD/interop-cache/."""
    cache = os.path.join(os.path.abspath(build_dir), "interop-cache")
    return bool(glob.glob(os.path.join(cache, "linux-image-*", "boot", "vmlinuz-*")))


def fetch_kernel(cache):
    """Download and unpack the kernel; return (vmlinuz, modules dir, version)."""
    pkg = kernel_package()
    if pkg is None and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        pkg = kernel_package()
    if pkg is None:
        # No apt (or no answer): a kernel fetched earlier still serves.
        cached = sorted(glob.glob(os.path.join(cache, "linux-image-*", "boot", "vmlinuz-*")))
        if not cached:
            raise RuntimeError("apt-cache depends linux-image-amd64 names no kernel "
                               "(apt-get and apt-cache are needed to fetch one)")
        pkg = os.path.basename(os.path.dirname(os.path.dirname(cached[-1])))
    tree = os.path.join(cache, pkg)
    vmlinuz = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))
    if not vmlinuz:
        log("downloading %s with apt-get download (not installed on this host)" % pkg)
        tmp = tempfile.mkdtemp(dir=cache)
        try:
            deb = download(pkg, tmp)
            log("unpacking %s with dpkg -x into %s" % (os.path.basename(deb), tree))
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["dpkg", "-x", deb, tree + ".part"], check=True)
            os.rename(tree + ".part", tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        vmlinuz = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))
    version = os.path.basename(vmlinuz[0])[len("vmlinuz-"):]
    return vmlinuz[0], os.path.join(tree, "lib", "modules", version), version


def module_depends(path):
    """The depends= field of a .ko's .modinfo section (what modinfo -F depends says)."""
    with open(path, "rb") as f:
        data = f.read()
    m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return m.group(1).decode().split(",")


def load_order(moddir, roots):
    """Module files (relative to moddir) with every dependency before its user."""
    index = {}
    for path in glob.glob(os.path.join(moddir, "kernel", "**", "*.ko*"), recursive=True):
        name = os.path.basename(path).split(".ko")[0].replace("-", "_")
        index[name] = path
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        if name not in index:  # built into the kernel
            return
        for dep in module_depends(index[name]):
            visit(dep.replace("-", "_"))
        order.append(os.path.relpath(index[name], moddir))

    for r in roots:
        visit(r)
    return order


def busybox_path():
    """The static busybox binary (package busybox-static)."""
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            out = subprocess.run(["file", "-L", p], capture_output=True, text=True,
                                 check=False).stdout if shutil.which("file") else ""
            if "dynamically" not in out:
                return p
    raise RuntimeError("static busybox not found (apt-get install busybox-static)")


def build_initrd(cache, moddir, version):
    """Build (or reuse) the initramfs; return its path."""
    bb = busybox_path()
    order = load_order(moddir, ROOT_MODULES)
    for mod in ("virtio_net", "virtio-rng"):
        if not any(mod in m for m in order):
            raise RuntimeError("%s module not found under %s" % (mod, moddir))
    h = hashlib.sha256()
    for p in [INIT, bb] + [os.path.join(moddir, m) for m in order]:
        with open(p, "rb") as f:
            h.update(f.read())
    out = os.path.join(cache, "guest-%s-%s.cpio.gz" % (version, h.hexdigest()[:12]))
    if os.path.exists(out):
        return out
    log("building initramfs: busybox + /init + %s" %
        " ".join(os.path.basename(m).split(".ko")[0] for m in order))
    root = tempfile.mkdtemp(dir=cache)
    try:
        for d in ("bin", "proc", "sys", "dev", "lib/modules", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy(bb, os.path.join(root, "bin", "busybox"))
        shutil.copy(INIT, os.path.join(root, "init"))
        os.chmod(os.path.join(root, "init"), 0o755)
        names = []
        for m in order:
            base = os.path.basename(m)
            shutil.copy(os.path.join(moddir, m), os.path.join(root, "lib", "modules", base))
            names.append(base)
        with open(os.path.join(root, "lib", "modules", "load-order"), "w") as f:
            f.write("\n".join(names) + "\n")
        files = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=root,
                               capture_output=True, check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                              input=files, capture_output=True, check=True).stdout
        with gzip.open(out + ".part", "wb") as f:
            f.write(cpio)
        os.rename(out + ".part", out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def ensure_guest(build_dir):
    """Return (kernel, initrd, kernel version), fetching/building as needed."""
    cache = os.path.join(os.path.abspath(build_dir), "interop-cache")
    os.makedirs(cache, exist_ok=True)
    kernel, moddir, version = fetch_kernel(cache)
    return kernel, build_initrd(cache, moddir, version), version


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    kernel, initrd, version = ensure_guest(args.build_dir)
    print("kernel=%s\ninitrd=%s\nversion=%s" % (kernel, initrd, version))


if __name__ == "__main__":
    main()
