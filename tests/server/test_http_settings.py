"""The HTTP daemon's listen address, DNS-rebinding settings and listening socket (no server needed)."""

from __future__ import annotations

import socket

import pytest

from argobox.server.config.model import ConfigError
from argobox.server.transport.http import _bind, is_loopback, parse_listen, transport_security  # pyright: ignore[reportPrivateUsage]

EVERY_ADDRESS = "0.0.0.0"  # noqa: S104 - an address to parse and classify; nothing here binds to it


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
        (f"{EVERY_ADDRESS}:80", (EVERY_ADDRESS, 80)),
    ],
)
def test_listen_addresses_parse(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8765", "::1:8765", "127.0.0.1:", ":8765", "127.0.0.1:99999", "127.0.0.1:http"])
def test_bad_listen_addresses_are_refused_clearly(value: str) -> None:
    with pytest.raises(ConfigError, match=r"HOST:PORT|brackets"):
        parse_listen(value)


def test_loopback_is_recognised() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in (EVERY_ADDRESS, "::", "192.168.1.5", "argobox.lan"))


def test_dns_rebinding_protection_names_only_what_was_bound_or_allowed() -> None:
    loopback = transport_security("127.0.0.1", [])
    wildcard = transport_security(EVERY_ADDRESS, ["argobox.lan", "proxy.lan:443"])
    lan = transport_security("192.168.1.5", [])

    assert loopback.enable_dns_rebinding_protection and wildcard.enable_dns_rebinding_protection
    assert loopback.allowed_hosts == ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    assert "argobox.lan:*" in wildcard.allowed_hosts and "proxy.lan:443" in wildcard.allowed_hosts
    assert not any(h.startswith(EVERY_ADDRESS) for h in wildcard.allowed_hosts)
    assert "https://proxy.lan:443" in wildcard.allowed_origins
    assert "192.168.1.5:*" in lan.allowed_hosts


def test_the_listening_socket_is_tcp_so_responses_are_not_delayed() -> None:
    # asyncio turns Nagle off for accepted connections only when the listening socket's protocol is TCP; with the
    # default protocol 0 every small response waited ~40 ms for a delayed ACK.
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
