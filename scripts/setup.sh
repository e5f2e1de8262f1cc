#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine needs to build shallow: OpenBLAS
# (Debian's libopenblas-dev). Does nothing when it is already there.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' || [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ]; then
  exit 0
fi
echo "setup: installing libopenblas-dev (OpenBLAS) with apt-get" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev >&2
