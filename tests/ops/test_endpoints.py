"""Endpoint descriptions for ``--port`` and ``--listen`` (``twisted_stream._ops._endpoints``):
what is wrong with a malformed one, said in our words and naming it."""

from __future__ import annotations

import pytest
from twisted.python import usage

from twisted_stream._ops._endpoints import check_endpoint, endpoint_problem


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("", "is empty: give a port number or an endpoint such as tcp:8080"),
        ("tcp", "no port given, as in tcp:8080"),
        ("tcp:", "no port given, as in tcp:8080"),
        ("tcp:abc", "the port 'abc' is not a whole number"),
        ("tcp6:abc", "the port 'abc' is not a whole number"),
        ("ssl:abc", "the port 'abc' is not a whole number"),
        ("tcp:80:backlog=x", "the backlog 'x' is not a whole number"),
        ("tcp6:80:x", "the backlog 'x' is not a whole number"),
        ("tcp:70000", "port 70000 is out of range (0-65535)"),
        ("tcp:80:nosuch=1", "tcp has no parameter 'nosuch' (it has port, interface, backlog)"),
        ("tcp:8080=1", "tcp has no parameter '8080'"),
        ("tcp:8080:interface=127.0.0.1:extra", "tcp parameter 'interface' is given twice"),
        ("tcp:80:127.0.0.1:5:more", "too many parts: 'more' is not a tcp parameter"),
        ("unix:", "no address given, as in unix:/run/web.sock"),
        ("unix:/tmp/web.sock:mode=zz", "the mode 'zz' is not an octal number such as 660"),
        ("unix:/nonexistent/dir/web.sock", "the socket's directory does not exist"),
    ],
)
def test_problems_in_our_words(description: str, problem: str) -> None:
    """Each malformed description of the common endpoint types gets a message of its own,
    never the text of Twisted's parser (``invalid literal for int()``, ``_parseTCP()``)."""
    found = endpoint_problem(description)
    assert found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    "description",
    [
        "tcp:8080",
        "tcp:0:interface=127.0.0.1",
        "tcp:port=8080:backlog=10",
        "tcp6:8080:interface=\\:\\:1",
        "unix:/tmp/web.sock:mode=660",
        "ssl:8443:privateKey=key.pem:certKey=cert.pem",
        "systemd:domain=INET:index=0",
    ],
)
def test_well_formed_descriptions_pass(description: str) -> None:
    """Well-formed descriptions (escaped colons included) and types we do not check
    ourselves are left to Twisted."""
    assert endpoint_problem(description) is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("tcp:abc", "--listen 'tcp:abc': the port 'abc' is not a whole number"),
        ("bogus:1", "--listen 'bogus:1': unknown endpoint type 'bogus': use one such as tcp:8080"),
        ("ssl:8443", "--listen 'ssl:8443': no privateKey given, as in ssl:8443:privateKey="),
        ("70000", "--listen '70000': port 70000 is out of range (0-65535)"),
        ("", "--listen '' is empty: give a port number"),
    ],
)
def test_check_endpoint_names_the_option_and_the_description(given: str, message: str) -> None:
    """``check_endpoint`` raises a one-line ``UsageError`` starting with the option and the
    description as given; Twisted's own complaints (an unknown type, a missing key file)
    are reworded too."""
    with pytest.raises(usage.UsageError) as caught:
        check_endpoint(given, "listen")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_check_endpoint_returns_the_description_to_listen_on() -> None:
    """A bare number means tcp:N; a description is returned stripped."""
    assert check_endpoint(" 8081 ", "port") == "tcp:8081"
    assert check_endpoint("tcp:0:interface=127.0.0.1 ", "port") == "tcp:0:interface=127.0.0.1"
