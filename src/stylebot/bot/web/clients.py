"""Who a request came from, as far as this server can tell, as a key for the rate limit.

Behind a reverse proxy every request arrives from the proxy, so the visitor's address
is in X-Forwarded-For, a header anyone can also send. It is believed only from a proxy
the operator named (`verify_web_trusted_proxies`), and then read from the right: each
trusted proxy appends the address it got the request from, so the rightmost address
that is not a trusted proxy is the visitor's; whatever lies left of it the visitor wrote.

The key is a keyed one-way code of the address, never the address: the usage log keeps
it for a day, and a visitor's address is nobody's business there. An IPv6 visitor is
counted by their /64 network, which one home or phone usually gets whole.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> IpAddress | None:
    try:
        found = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def trusted_networks(texts: Iterable[str]) -> tuple[IpNetwork, ...]:
    """The operator's trusted proxies. One written as an IPv4-mapped IPv6 address (as
    `ss` shows a dual-stack socket's peer) is taken as the IPv4 network it maps, since
    that is how `client_address` sees every such peer."""
    networks: list[IpNetwork] = []
    for text in texts:
        network = ipaddress.ip_network(text, strict=False)
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96), strict=False)
        networks.append(network)
    return tuple(networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Iterable[IpNetwork]
) -> IpAddress | None:
    """The visitor's address: the peer's, unless the peer is a trusted proxy; then the
    rightmost X-Forwarded-For entry that is not a trusted proxy. None when the peer is
    unknown, or a trusted proxy forwarded a header that cannot be read."""
    proxies = tuple(trusted)
    here = _address(peer) if peer else None
    if here is None:
        return None
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    while any(here in proxy for proxy in proxies):
        if not hops:
            return here  # a trusted proxy that forwarded nothing: count the proxy
        here = _address(hops.pop())
        if here is None:
            return None
    return here


@dataclass
class ClientKeys:
    """Turns an address into a rate-limit key; the key is kept for this process only,
    so the codes cannot be reversed by trying every address later."""

    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def key_of(self, address: IpAddress | None) -> str:
        if address is None:
            where = "unknown"
        elif isinstance(address, ipaddress.IPv6Address):
            where = str(ipaddress.IPv6Network((address, 64), strict=False))
        else:
            where = str(address)
        return hmac.new(self._secret, where.encode(), hashlib.sha256).hexdigest()[:24]
