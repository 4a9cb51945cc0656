#!/usr/bin/env bash
# Prints the path of a working uv, installing it into .tools/ with pip when none answers.
# A pyenv shim named uv can exist yet fail under this repo's Python, hence the --version probe.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then
  command -v uv
  exit 0
fi
if [ ! -x .tools/bin/uv ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target .tools uv >&2
fi
echo "$PWD/.tools/bin/uv"
