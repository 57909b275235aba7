#!/usr/bin/env bash
# The plugin after a real install: `pip install .` and `pip install -e .`, each into a fresh
# venv, must give a twistd that lists streamweb, documents its options, still imports Twisted
# itself (the wheel must not ship twisted/__init__.py), and serves
# `--app examples.countdown:resource` from the project root with the installed twistd script
# (which does not put the current directory on sys.path).
#
# Usage: bash .ci/check_install.sh        (PYTHON=python3.11 to choose the interpreter)
# Needs PyPI (hatchling and the dependencies). Prints "install check: N passed, 0 failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/serve_app.py" <<'EOF'
"""Start the installed twistd with --app from the project root, fetch a streamed countdown,
SIGTERM it, and check a clean shutdown. Every wait is bounded."""
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request

twistd, root = sys.argv[1], sys.argv[2]
proc = subprocess.Popen(
    [twistd, "-n", "--pidfile=", "streamweb", "--port", "tcp:0:interface=127.0.0.1",
     "--app", "examples.countdown:resource"],
    cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
)
lines: "queue.Queue[str | None]" = queue.Queue()
output: list[str] = []


def read() -> None:
    for line in proc.stdout:
        output.append(line)
        lines.put(line)
    lines.put(None)


threading.Thread(target=read, daemon=True).start()
try:
    port = None
    while port is None:
        line = lines.get(timeout=60)
        if line is None:
            sys.exit("twistd exited before listening:\n" + "".join(output))
        found = re.search(r"StreamWebSite starting on (\d+)", line)
        port = found and int(found.group(1))
    url = f"http://127.0.0.1:{port}/stream?delay=0&count=2"
    body = urllib.request.urlopen(url, timeout=30).read().decode()
    assert "Liftoff in 1" in body and "Lift off!" in body, body
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    while lines.get(timeout=30) is not None:
        pass
    text = "".join(output)
    assert code in (0, -signal.SIGTERM), f"exit status {code}:\n{text}"
    assert "Server Shut Down." in text and "Traceback" not in text, text
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
EOF

passed=0
check() {  # check NAME COMMAND...: run, count, stop at the first failure
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        echo "FAILED: $name"
        echo "install-check: $passed passed, 1 failed"
        exit 1
    fi
}

for mode in wheel editable; do
    venv="$work/venv-$mode"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    if [ "$mode" = editable ]; then
        "$venv/bin/python" -m pip install --quiet -e "$root"
    else
        "$venv/bin/python" -m pip install --quiet "$root"
    fi
    # Run from an empty directory so only the installed copy can be found.
    cd "$work"
    top_help=$("$venv/bin/twistd" --help)
    plugin_help=$("$venv/bin/twistd" streamweb --help)
    check "$mode: twistd --help lists streamweb" grep -Eq '^ +streamweb +' <<< "$top_help"
    for option in --port --listen --path --app --grace-period --buffer-size; do
        check "$mode: twistd streamweb --help documents $option" \
            grep -q -- "$option=" <<< "$plugin_help"
    done
    check "$mode: Twisted itself still imports" \
        "$venv/bin/python" -c "import twisted, twisted.web; print(twisted.__version__)"
    if [ "$mode" = wheel ]; then
        check "wheel: the package comes from site-packages" \
            "$venv/bin/python" -c "import twisted_stream; assert 'site-packages' in twisted_stream.__file__"
        check "wheel: the dropin is installed, with no __init__.py beside it" \
            "$venv/bin/python" -c "
import pathlib, twisted
plugins = pathlib.Path(twisted.__file__).parent / 'plugins'
assert (plugins / 'twisted_stream_streamweb.py').is_file()
assert (plugins / '__init__.py').read_text().find('pluginPackagePaths') >= 0"
        check "wheel: the status page's script and style are installed" \
            "$venv/bin/python" -c "
from twisted_stream._ops import _status_page as page
assert 'EventSource' in page._SCRIPT and '.spark' in page._STYLE"
    fi
    check "$mode: --app examples.countdown:resource from the project root" \
        "$venv/bin/python" "$work/serve_app.py" "$venv/bin/twistd" "$root"
    cd "$root"
done

echo "install-check: $passed passed, 0 failed"
