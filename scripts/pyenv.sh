#!/usr/bin/env bash
# Makes target/pyenv, the Python that checks shallow's models with other
# people's code (NumPy, the safetensors package, onnxruntime) and writes the
# real 8 x 8 digits that scikit-learn ships. Does nothing when it is there.
# Tests that need it skip, saying why, when it cannot be made.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=target/pyenv/bin/python
if [ -x "$PY" ] && "$PY" -c "import numpy, safetensors, onnxruntime, sklearn" 2>/dev/null; then
  exit 0
fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  echo "pyenv: installing python3-venv with apt-get" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >&2
fi
mkdir -p target
python3 -m venv target/pyenv
"$PY" -m pip install -q --disable-pip-version-check \
  numpy==2.4.6 safetensors==0.8.0 onnxruntime==1.32.0 scikit-learn==1.9.1 >&2
