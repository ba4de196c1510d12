"""Which address the verify page counts a request against, and the key it keeps."""

from __future__ import annotations

import ipaddress

import pytest

from stylebot.bot.web.clients import ClientKeys, client_address, trusted_networks

PROXY = (ipaddress.ip_network("10.0.0.0/8"),)
ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("peer", "forwarded", "visitor"),
    [
        # No trusted proxy in the way: the header is whatever the visitor wrote.
        ("198.51.100.7", ["203.0.113.5"], "198.51.100.7"),
        # The proxy appended the address it got the request from: the rightmost.
        ("10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
        ("10.0.0.2", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),
        ("10.0.0.2", ["1.1.1.1", "203.0.113.5"], "203.0.113.5"),
        # Two proxies of the operator's in a row.
        ("10.0.0.2", ["203.0.113.5, 10.0.0.9"], "203.0.113.5"),
        # A trusted proxy that forwarded nothing is counted itself.
        ("10.0.0.2", [], "10.0.0.2"),
        # IPv4 seen through an IPv6 socket is the same visitor.
        ("::ffff:198.51.100.7", [], "198.51.100.7"),
        ("10.0.0.2", [" 2001:db8::1 "], "2001:db8::1"),
    ],
)
def test_the_visitor_is_the_rightmost_address_no_trusted_proxy_holds(
    peer: str, forwarded: list[str], visitor: str
) -> None:
    assert client_address(peer, forwarded, PROXY) == ip(visitor)


def test_a_proxy_written_as_an_ipv4_mapped_address_is_trusted() -> None:
    """The peer of a dual-stack socket is seen as IPv4; the operator may have copied the
    proxy's address as the socket showed it. Otherwise nobody's header is believed and
    all visitors share the proxy's one limit."""
    mapped = trusted_networks(["::ffff:10.0.0.2", "::ffff:192.168.0.0/112"])
    assert mapped == (ipaddress.ip_network("10.0.0.2/32"), ipaddress.ip_network("192.168.0.0/16"))
    for peer in ("10.0.0.2", "::ffff:10.0.0.2", "192.168.4.4"):
        assert client_address(peer, ["203.0.113.5"], mapped) == ip("203.0.113.5")
    assert trusted_networks(["2001:db8::/32"]) == (ipaddress.ip_network("2001:db8::/32"),)


def test_an_unreadable_forwarded_address_or_peer_is_no_address() -> None:
    assert client_address("10.0.0.2", ["203.0.113.5, <script>"], PROXY) is None
    assert client_address(None, ["203.0.113.5"], PROXY) is None


def test_keys_are_one_way_per_process_and_per_ipv6_network() -> None:
    keys = ClientKeys()
    four = keys.key_of(ip("203.0.113.5"))
    assert len(four) == 24
    assert set(four) <= set("0123456789abcdef")  # a code, not the address
    assert four == keys.key_of(ip("203.0.113.5"))
    assert four != keys.key_of(ip("203.0.113.6"))
    assert four != ClientKeys().key_of(ip("203.0.113.5"))
    assert keys.key_of(ip("2001:db8:1:2::a")) == keys.key_of(ip("2001:db8:1:2:ffff::1"))
    assert keys.key_of(ip("2001:db8:1:2::a")) != keys.key_of(ip("2001:db8:1:3::a"))
    assert keys.key_of(None) == keys.key_of(None)
