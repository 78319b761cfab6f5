#!/bin/sh
# The GUI tests under load: one busy process per core competes with them for the whole run, as
# a loaded CI machine or a laptop doing other work would. A test that passes only when it gets
# the CPU on time (a wait armed too late, a timeout too tight) fails here. The busy processes are
# plain shell loops, killed by PID when the run ends, however it ends.
#   scripts/stress-tests.sh                 the GUI tests (tests/gui)
#   scripts/stress-tests.sh tests -x        any pytest arguments instead
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory venv >/dev/null

cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
hogs=""
stop_hogs() {
    for pid in $hogs; do kill "$pid" 2>/dev/null || true; done
    for pid in $hogs; do wait "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM

i=0
while [ "$i" -lt "$cores" ]; do
    sh -c 'while :; do :; done' &
    hogs="$hogs $!"
    i=$((i + 1))
done
echo "stress-tests: $cores busy processes ($hogs ) beside the tests"

[ "$#" -gt 0 ] || set -- tests/gui
QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -p no:cacheprovider "$@"
