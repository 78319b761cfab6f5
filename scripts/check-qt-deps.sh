#!/bin/sh
# Qt's X11 platform plugin needs system libraries that minimal Linux installs lack. `make run` calls
# this: a no-op when they are present; installs them when it can (root with apt-get); otherwise it
# names them in one line and stops.
set -eu
[ "$(uname -s)" = Linux ] || exit 0
plugin=$(ls .venv/lib/python*/site-packages/PySide6/Qt/plugins/platforms/libqxcb.so 2>/dev/null | head -n 1)
[ -n "$plugin" ] || exit 0
missing=$(ldd "$plugin" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
[ -z "$missing" ] && exit 0
packages="libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxcb-shape0 libxkbcommon-x11-0"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing the X11 libraries Qt needs ($missing)..."
    apt-get install -y -q $packages >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q $packages >/dev/null; }
else
    echo "Qt cannot open a window: missing $missing. Install them with: sudo apt-get install $packages" >&2
    exit 1
fi
