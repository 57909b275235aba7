"""The targets: every server the suite compares, what each can serve, how each starts.

A target has *features* (``files``, ``gen``, ``sse``, ``proxy``: the route families listed in
``servers/_common.py``); a workload runs on every selected target that has one of the
features it names. Adding a peer: write ``servers/<name>_server.py`` answering the routes of
the features it has, and add a ``Target`` to ``TARGETS`` below.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks._server import REPO


@dataclass(frozen=True)
class Launch:
    """What a server is started with."""

    port: int
    root: str  # the directory of test files, served at /files/
    workdir: str  # a private scratch directory (nginx's prefix)
    sse_every: float
    profile: str | None = None  # where a Python server writes cProfile statistics
    upstream: str | None = None  # the URL /proxy/ forwards to (the proxy workloads)


@dataclass(frozen=True)
class Target:
    name: str  # for --targets
    label: str  # column heading
    features: frozenset[str]
    command: Callable[[Launch], list[str]]
    missing: Callable[[bool], str | None]  # why it cannot run (True: may install), or None
    in_smoke: bool = False  # run by --smoke without --targets: needs nothing beyond the project
    pinned: bool = True  # on the server CPU; False: free to use every CPU (worker processes)


def python_server(module: str) -> Callable[[Launch], list[str]]:
    """The command of the Python server ``benchmarks/servers/<module>.py``."""

    def command(launch: Launch) -> list[str]:
        cmd = [sys.executable, "-m", f"benchmarks.servers.{module}", "--port", str(launch.port)]
        cmd += ["--root", launch.root, "--sse-every", str(launch.sse_every)]
        if launch.profile:
            cmd += ["--profile", launch.profile]
        if launch.upstream:
            cmd += ["--upstream", launch.upstream]
        return cmd

    return command


def streamweb_workers(count: int) -> Callable[[Launch], list[str]]:
    """``twistd -n streamweb --workers count`` serving ``servers/streamweb_app.py``."""

    def command(launch: Launch) -> list[str]:
        twistd = (
            "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
        )
        return [
            sys.executable, "-c", twistd, "-n", "--pidfile=", "streamweb",
            "--workers", str(count), "--app", "benchmarks.servers.streamweb_app:resource",
            "--port", f"tcp:{launch.port}:interface=127.0.0.1:backlog=4096",
            "--logfile", os.devnull,
        ]  # fmt: skip

    return command


def needs_modules(*modules: str) -> Callable[[bool], str | None]:
    def missing(install: bool) -> str | None:
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
        if absent:
            return f"{', '.join(absent)} not installed (pip install -e '.[bench]')"
        return None

    return missing


# nginx: Debian's package, installed on first use; a non-daemon master with one worker, its
# own prefix and configuration in a scratch directory, sendfile on, no access log.

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    default_type application/octet-stream;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
{upstreams}    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /ping {{ return 200 "pong\\n"; }}
        location /files/ {{ alias {root}/; }}
{proxy}    }}
}}
"""

NGINX_UPSTREAM = """\
    upstream backend {{ server {authority}; keepalive 32; }}
"""
NGINX_PROXY = """\
        location /proxy/ {{
            proxy_pass http://backend/;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
"""
"""The proxy route: nginx's own streaming pass-through (no buffering, kept-alive upstream
connections, as the other proxies pool theirs)."""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )


def nginx_missing(install: bool) -> str | None:
    """None once nginx is there; installs Debian's package when allowed and absent."""
    if nginx_binary():
        return None
    if not install:
        return "nginx not installed (the full run installs it: apt-get install -y nginx)"
    if not shutil.which("apt-get"):
        return "nginx not installed and no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = ["apt-get", "install", "-y", "-qq", "nginx"]
    print("installing nginx: apt-get install -y nginx", flush=True)
    for steps in ([install_cmd], [["apt-get", "update", "-qq"], install_cmd]):
        for cmd in steps:
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
        if nginx_binary():
            return None
    return "apt-get install -y nginx failed"


def nginx_command(launch: Launch) -> list[str]:
    conf = os.path.join(launch.workdir, "nginx.conf")
    proxy = NGINX_PROXY.format() if launch.upstream else ""
    upstreams = ""
    if launch.upstream:
        upstreams = NGINX_UPSTREAM.format(authority=launch.upstream.partition("//")[2])
    with open(conf, "w") as f:
        f.write(
            NGINX_CONF.format(
                workdir=launch.workdir,
                port=launch.port,
                root=launch.root,
                proxy=proxy,
                upstreams=upstreams,
            )
        )
    binary = nginx_binary()
    assert binary is not None
    return [binary, "-p", launch.workdir, "-c", conf, "-e", os.path.join(launch.workdir, "err")]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "twisted_stream",
            "twisted_stream",
            frozenset({"files", "gen", "sse", "threaded", "proxy", "upload"}),
            python_server("twisted_stream_server"),
            needs_modules("twisted_stream"),
            in_smoke=True,
        ),
        Target(
            "static_file",
            "static.File",
            frozenset({"files"}),
            python_server("static_file_server"),
            needs_modules("twisted"),
            in_smoke=True,
        ),
        Target(
            "aiohttp",
            "aiohttp",
            frozenset({"files", "gen", "sse", "proxy", "upload"}),
            python_server("aiohttp_server"),
            needs_modules("aiohttp"),
        ),
        Target(
            "starlette",
            "Starlette+uvicorn",
            frozenset({"files", "gen", "sse", "upload"}),
            python_server("starlette_server"),
            needs_modules("starlette", "uvicorn"),
        ),
        Target(
            "nginx",
            "nginx",
            frozenset({"files", "proxy"}),
            nginx_command,
            nginx_missing,
        ),
        # twistd streamweb with one and with two worker processes (feature "workers"), both
        # free to use both CPUs (the client's included): a second process only helps there.
        Target(
            "streamweb_1w",
            "streamweb, 1 worker",
            frozenset({"workers"}),
            streamweb_workers(1),
            needs_modules("twisted_stream"),
            in_smoke=True,
            pinned=False,
        ),
        Target(
            "streamweb_2w",
            "streamweb, 2 workers",
            frozenset({"workers"}),
            streamweb_workers(2),
            needs_modules("twisted_stream"),
            in_smoke=True,
            pinned=False,
        ),
    ]
}


def versions() -> dict[str, str]:
    """Versions of the stacks compared (absent ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("twisted", "aiohttp", "starlette", "uvicorn", "uvloop", "httptools"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    binary = nginx_binary()
    if binary:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
        found["nginx"] = out.stderr.strip().rpartition("/")[2] or "?"
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run([curl, "--version"], capture_output=True, text=True, check=False)
        found["curl"] = out.stdout.split()[1] if out.stdout else "?"
    return found


__all__ = ["REPO", "TARGETS", "Launch", "Target", "versions"]
