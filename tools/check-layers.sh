#!/usr/bin/env bash
# Enforce the layer rule on #include lines (docs/architecture.md):
#   util      -> (nothing of ours)
#   transport -> util
#   mem       -> util
#   vq        -> util mem
#   core      -> util transport mem vq
#   net       -> util mem vq core
#   proto     -> util transport mem vq core
#   examples, apps -> public headers only (<vhostkit/...>)
# Every layer may include the public headers (vhostkit/...).
set -u
cd "$(dirname "$0")/.."
declare -A allowed=(
    [util]="util"
    [transport]="util transport"
    [mem]="util mem"
    [vq]="util mem vq"
    [core]="util transport mem vq core"
    [net]="util mem vq core net"
    [proto]="util transport mem vq core proto"
)
bad=0
for layer in "${!allowed[@]}"; do
    for f in $(find "src/$layer" -name '*.[ch]' -o -name '*.def' 2>/dev/null); do
        while IFS= read -r inc; do
            dir=${inc%%/*}
            [ "$dir" = "vhostkit" ] && continue
            [ "$dir" = "$inc" ] && continue   # same-directory include ("x.h")
            if ! grep -qw "$dir" <<<"${allowed[$layer]}"; then
                echo "layer violation: $f includes \"$inc\""
                bad=1
            fi
        done < <(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done
# Apps and examples: public headers (<vhostkit/...>) and their own local
# headers ("x.h" in the same directory) only; nothing from src/ or tests/.
for f in $(find examples apps -name '*.c' -o -name '*.h' 2>/dev/null); do
    if grep -nE '^#[[:space:]]*include[[:space:]]*"[^"]*/' "$f"; then
        echo "apps/examples must include only <vhostkit/...> and local headers: $f"
        bad=1
    fi
    if grep -nE '^#[[:space:]]*include[[:space:]]*<(util|transport|mem|vq|core|net|proto)/' "$f"; then
        echo "apps/examples must not include library internals: $f"
        bad=1
    fi
done
# Public headers never include <linux/...>.
if grep -nE '^#[[:space:]]*include[[:space:]]*<linux/' include/vhostkit/*.h; then
    echo "public headers must not include <linux/*>"
    bad=1
fi
[ $bad -eq 0 ] && echo "layers ok"
exit $bad
