#!/usr/bin/env bash
# Sets up Custos on a Debian machine: system packages (when run as root), then a virtual
# environment in .venv with Custos installed in editable mode.
#   bash packaging/setup.sh          runtime only
#   bash packaging/setup.sh --dev    plus test, lint and interop peers (GStreamer, FFmpeg, Xvfb)
# Set CUSTOS_SKIP_APT=1 to skip the apt step (e.g. on a machine prepared by hand).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

runtime_apt=(python3-venv libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-xinerama0
  libxcb-randr0 libxcb-render-util0 libxcb-image0 libxcb-shape0 libxcb-xkb1)
dev_apt=(ffmpeg xvfb gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0)

if [ "${CUSTOS_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  want=("${runtime_apt[@]}")
  [ $dev = 1 ] && want+=("${dev_apt[@]}")
  missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

python=$(command -v python3.11 || command -v python3)
"$python" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"setup: Custos needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if [ $dev = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
echo "setup: ready (.venv/bin/custos)"
