"""``twistd streamweb`` over HTTPS and HTTP/2, as the README's "HTTPS and HTTP/2" section
runs it: the real twistd in a subprocess, a certificate the test makes, HTTP and HTTPS
listening together, an HTTP/2 client (``h2`` over TLS, ALPN ``h2``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.threads import deferToThread

from ..http.h2client import H2Client
from ..http.tlscert import make_certificate
from ..waiting import within
from .test_plugin_e2e import LOCAL, PROJECT, twistd_processes


@pytest.fixture
def twistd() -> Iterator[Any]:
    """Starts twistd processes; kills those left at teardown."""
    yield from twistd_processes()


@pytest_twisted.ensureDeferred
async def test_https_and_http2_beside_http_with_goaway_at_sigterm(
    twistd: Any, tmp_path: Path
) -> None:
    """``--listen tcp:... --listen ssl:...`` serves HTTP and HTTPS together; ALPN picks
    ``h2``, a download arrives whole over HTTP/2, and on SIGTERM an open HTTP/2 stream's
    client gets GOAWAY, then the endless stream ends cleanly and twistd exits."""
    cert = make_certificate(tmp_path)
    ssl = f"ssl:0:interface=127.0.0.1:privateKey={cert.key}:certKey={cert.cert}"
    server = twistd("streamweb", "--grace-period", "0.5", "--listen", LOCAL, "--listen", ssl,
                    cwd=PROJECT)  # fmt: skip
    http_port = int((await server.wait_for(r"StreamWebSite starting on (\d+)")).group(1))
    tls_port = int((await server.wait_for(r"StreamWebSite \(TLS\) starting on (\d+)")).group(1))
    plain = await within(treq.get(f"http://127.0.0.1:{http_port}/download?size=1K"))
    assert plain.code == 200 and len(await within(treq.content(plain))) == 1024
    client = H2Client(tls_port, cert.cert, keep_body=True)
    try:
        assert await deferToThread(client.connect) == "h2"
        download, clock = await deferToThread(
            client.get_many, ["/download?size=1M", "/clock?interval=0.05"]
        )
        await deferToThread(
            client.read_until,
            lambda: client.responses[download].done and client.responses[clock].received > 0,
        )
        body = bytes(client.responses[download].body)
        assert client.responses[download].ended and len(body) == 1024 * 1024
        assert body[:512] == bytes(range(256)) * 2
        server.proc.send_signal(signal.SIGTERM)
        await deferToThread(client.read_until, lambda: bool(client.frames.goaways), 30.0)
        assert client.frames.goaways[0].error_code == 0
        await deferToThread(client.read_until, lambda: client.responses[clock].done, 30.0)
        assert client.responses[clock].ended
        await deferToThread(client.read_to_close, 30.0)
    finally:
        client.close()
    code = await within(server.exited, 30.0)
    assert code in (0, -signal.SIGTERM), server.output
    assert "Server Shut Down." in server.output
    assert "Traceback" not in server.output


def test_ssl_without_the_tls_extra_ends_with_one_line_naming_it(tmp_path: Path) -> None:
    """Without pyOpenSSL (the ``tls`` extra), ``--listen ssl:...`` ends twistd with one line
    naming the extra to install (then the line pointing at ``--help``); never a traceback."""
    cert = make_certificate(tmp_path)
    blocked = (
        "import sys; sys.modules['OpenSSL'] = None; from twisted.scripts.twistd import run; "
        "sys.argv[0] = 'twistd'; sys.exit(run())"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked, "-n", "--pidfile=", "streamweb", "--listen",
         f"ssl:0:privateKey={cert.key}:certKey={cert.cert}"],
        cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    lines = result.stdout.strip().splitlines()
    assert len(lines) <= 2, result.stdout  # the message, then where --help is
    assert "twisted_stream[tls]" in lines[0], result.stdout
    assert "Traceback" not in result.stdout
