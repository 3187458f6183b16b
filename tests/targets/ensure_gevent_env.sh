#!/usr/bin/env bash
# Make sure a venv with gevent exists for one interpreter (tests/integration/test_hostile_env.py).
#
#   tests/targets/ensure_gevent_env.sh PYTHON VENV
#
# The venv is made with PYTHON and gets gevent from the package index (a wheel: a few
# seconds). Exits 0 when gevent imports, non-zero otherwise: then the test skips.
set -euo pipefail
python=${1:?usage: ensure_gevent_env.sh PYTHON VENV}
venv=${2:?usage: ensure_gevent_env.sh PYTHON VENV}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import gevent" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: gevent
"$venv/bin/python" -c "import gevent"
