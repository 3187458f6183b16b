#!/bin/bash
# The fan-out and first-attach benches on a host with free cores (the workplace's device machine:
# 16 cores), where the 2-core development host is bound by CPU. Not a test; nothing is asserted.
#
#   bench/device_hosts.sh pack   # here: .devrun/ (git-ignored) with the client's pure-Python
#                                # dependencies and py-spy from .venv, to carry to the device
#   bench/device_hosts.sh run [fleet]
#                                # there (device tool: run with carry [".devrun"]): prints the tables
#                                # and copies bench/RESULTS-{fleet,attach}.md to $OUT; "fleet": the
#                                # fan-out alone (RUNS runs per cell, default 5)
#
# There the client and the targets use the host's own Python (DEVPY, else /opt/torch/.venv/bin/python3,
# else python3); same minor version on both sides, so nothing is compiled for the targets. Results are
# appended to this checkout's bench/RESULTS-*.md by hand, with what the run was.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

pack() {
    local site=.venv/lib/python3*/site-packages
    rm -rf .devrun && mkdir -p .devrun/site .devrun/bin || return 1
    for package in rich markdown_it mdurl pygments prompt_toolkit wcwidth; do
        cp -r $site/$package .devrun/site/ || return 1
    done
    cp .venv/bin/py-spy .devrun/bin/ || return 1
    find .devrun -name __pycache__ -prune -exec rm -rf {} +
    grep -qx "/.devrun/" .git/info/exclude 2>/dev/null || echo "/.devrun/" >>.git/info/exclude
    du -sh .devrun
}

run() {
    export PYTHONUNBUFFERED=1
    local python=${DEVPY:-/opt/torch/.venv/bin/python3}
    [ -x "$python" ] || python=$(command -v python3)
    echo "python: $python -> $(readlink -f "$python")"
    "$python" -VV && nproc && uname -r && id
    export PYTHONPATH=$ROOT/src:$ROOT/.devrun/site PATH=$ROOT/.devrun/bin:$PATH
    "$python" -m compileall -q src >/dev/null
    # the fan-out: root's workers, then nobody's (root attaches through a privsep helper)
    timeout 150 "$python" bench/fleet.py --runs "${RUNS:-5}" --python "$python" \
        --note "Device host, client and workers on the host's own Python."
    chmod -R a+rX "$ROOT"
    timeout 150 "$python" bench/fleet.py --runs "${RUNS:-5}" --python "$python" --user nobody \
        --note "Device host, workers as nobody (root attaches through privsep), the host's own Python."
    cp bench/RESULTS-fleet.md "${OUT:-/tmp}/"
    [ "${1:-}" = fleet ] && return
    # first attach against the target's threads: bench/attach.py finds interpreters as pyenv lays them out
    # (a fresh private directory, not a fixed name in /tmp: this runs as root)
    local pyenv
    pyenv=$(mktemp -d) || return 1
    mkdir -p "$pyenv/versions/3.12.99/bin" && ln -s "$python" "$pyenv/versions/3.12.99/bin/python"
    PYENV_ROOT=$pyenv timeout 240 "$python" bench/attach.py --runs 3 --pythons 3.12 --label "device host"
    rm -rf "$pyenv"
    cp bench/RESULTS-fleet.md bench/RESULTS-attach.md "${OUT:-/tmp}/"
}

case "${1:-}" in
pack) pack ;;
run) run "${2:-}" ;;
*) sed -n '2,15p' "$0" && exit 2 ;;
esac
