#!/usr/bin/env bash
# Make sure DIR holds PACKAGE's wheels (and its dependencies') for PYTHON's version, importable with PYTHONPATH=DIR
# (tests/integration/test_uvloop.py, test_trio.py): for interpreters without a venv module or pip of their own
# (Debian's 3.14 and 3.15), installed by the pip of PIP_PYTHON (the test's own interpreter).
#
#   tests/targets/ensure_wheel_dir.sh PYTHON DIR PACKAGE PIP_PYTHON
#
# A binary wheel from the package index (a few seconds). Exits 0 when PACKAGE imports, non-zero
# otherwise: then the tests skip.
set -euo pipefail
python=${1:?usage: ensure_wheel_dir.sh PYTHON DIR PACKAGE PIP_PYTHON}
dir=${2:?usage: ensure_wheel_dir.sh PYTHON DIR PACKAGE PIP_PYTHON}
package=${3:?usage: ensure_wheel_dir.sh PYTHON DIR PACKAGE PIP_PYTHON}
pip_python=${4:?usage: ensure_wheel_dir.sh PYTHON DIR PACKAGE PIP_PYTHON}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# test workers running side by side (xdist) take turns: the first fills the directory, the others find it
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -d "$dir" ] && PYTHONPATH="$dir" "$python" -c "import $package" 2>/dev/null; then
    exit 0
fi
rm -rf "$dir"
"$pip_python" -m pip install --quiet --disable-pip-version-check --target "$dir" \
    --only-binary=:all: --python-version "$version" --implementation cp "$package"
PYTHONPATH="$dir" "$python" -c "import $package"
