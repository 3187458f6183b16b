#!/usr/bin/env bash
# Make sure a venv with gevent (or eventlet) exists for one interpreter
# (tests/integration/test_hostile_env.py).
#
#   tests/targets/ensure_gevent_env.sh PYTHON VENV [PACKAGE]   # PACKAGE: gevent (default) or eventlet
#
# The venv is made with PYTHON and gets PACKAGE from the package index (a wheel: a few
# seconds). Exits 0 when it imports, non-zero otherwise: then the test skips.
set -euo pipefail
python=${1:?usage: ensure_gevent_env.sh PYTHON VENV [PACKAGE]}
venv=${2:?usage: ensure_gevent_env.sh PYTHON VENV [PACKAGE]}
package=${3:-gevent}
# test workers running side by side (xdist) take turns: the first makes the venv, the others find it
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -W ignore -c "import $package" 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: "$package"
"$venv/bin/python" -W ignore -c "import $package"
