#!/usr/bin/env bash
# Make sure bench/.venvs/torch311 exists and imports torch (for tests/integration/test_torch.py).
#
#   tests/targets/ensure_torch_env.sh PYTHON   # a Python 3.11 interpreter (pyenv's)
#
# The venv is made with that interpreter and gets torch==2.13.0 (the CPU wheel, from the
# machine's local wheel store: 25-45 s). Exits 0 when torch imports, non-zero otherwise:
# then the tests skip.
set -euo pipefail
python=${1:?usage: ensure_torch_env.sh PYTHON}
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/bench/.venvs/torch311"
# test workers running side by side (xdist) take turns: the first makes the venv, the others find it
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -W ignore -c "import torch" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0
"$venv/bin/python" -W ignore -c "import torch"
