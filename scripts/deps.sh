#!/usr/bin/env bash
# Install the Debian 12 packages vhostkit needs to build and test.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail
# qemu-system-x86 dpdk dpdk-dev busybox-static cpio: the interop suite and the VM demo
# (QEMU + a Debian guest kernel fetched with apt-get download, DPDK testpmd).
pkgs=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3
      qemu-system-x86 dpdk dpdk-dev busybox-static cpio "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "vhostkit: installing ${missing[*]} (apt-get)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
