#!/usr/bin/env bash
# Each public header compiles on its own, as C11 and as C++.
set -u
cd "$(dirname "$0")/.."
bad=0
for h in include/vhostkit/*.h; do
    n=$(basename "$h")
    echo "#include <vhostkit/$n>" | ${CC:-cc} -std=c11 -Wall -Wextra -Werror -Iinclude -x c -fsyntax-only - || { echo "C: $n"; bad=1; }
    if command -v c++ >/dev/null; then
        echo "#include <vhostkit/$n>" | c++ -std=c++11 -Wall -Werror -Iinclude -x c++ -fsyntax-only - || { echo "C++: $n"; bad=1; }
    fi
done
[ $bad -eq 0 ] && echo "headers ok"
exit $bad
