"""Which IP addresses kinema may fetch images from.

Image URLs come from clients, so a fetch must never reach the machine kinema runs on,
its private network or cloud metadata services (SSRF). The rules are explicit network
tables rather than ``ipaddress``'s ``is_private``/``is_global``: those were wrong for
several ranges before Python 3.11.10 (CVE-2024-4032) and say nothing useful about IPv6
forms that carry an IPv4 address inside them (IPv4-mapped, NAT64, 6to4, ...).

Everything not refused by a table is fetchable, except that an IPv6 address must lie in
the global unicast range 2000::/3: what lies outside it is either special or unassigned.

NAT64 addresses are refused even when they carry a public IPv4 address, so on an
IPv6-only network that relies on DNS64, IPv4-only image hosts cannot be fetched unless
they are allow-listed.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import NamedTuple

__all__ = ["is_fetchable", "refusal_reason"]


class _V4Rule(NamedTuple):
    network: IPv4Network
    reason: str


class _V6Rule(NamedTuple):
    network: IPv6Network
    reason: str
    # How to read the IPv4 address this form carries, so the reason can name it.
    embedded: Callable[[IPv6Address], IPv4Address | None] | None = None


def _v4(network: str, reason: str) -> _V4Rule:
    return _V4Rule(IPv4Network(network), reason)


def _v6(
    network: str,
    reason: str,
    embedded: Callable[[IPv6Address], IPv4Address | None] | None = None,
) -> _V6Rule:
    return _V6Rule(IPv6Network(network), reason, embedded)


def _low_32_bits(address: IPv6Address) -> IPv4Address:
    return IPv4Address(int(address) & 0xFFFFFFFF)


def _ipv4_mapped(address: IPv6Address) -> IPv4Address | None:
    return address.ipv4_mapped


def _sixtofour(address: IPv6Address) -> IPv4Address | None:
    return address.sixtofour


def _teredo_client(address: IPv6Address) -> IPv4Address | None:
    teredo = address.teredo
    return teredo[1] if teredo else None


# Checked in order; the first match wins, so narrow ranges come before the ranges that
# contain them. Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries.
_IPV4_RULES: tuple[_V4Rule, ...] = (
    _v4("0.0.0.0/8", "an unspecified ('this network') address"),
    _v4("10.0.0.0/8", "a private address"),
    _v4("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    _v4("127.0.0.0/8", "a loopback address"),
    _v4("169.254.0.0/16", "a link-local address"),
    _v4("172.16.0.0/12", "a private address"),
    _v4("192.0.0.0/24", "an IETF protocol assignment address"),
    _v4("192.0.2.0/24", "a documentation address"),
    _v4("192.88.99.0/24", "a 6to4 relay anycast address"),
    _v4("192.168.0.0/16", "a private address"),
    _v4("198.18.0.0/15", "a benchmarking address"),
    _v4("198.51.100.0/24", "a documentation address"),
    _v4("203.0.113.0/24", "a documentation address"),
    _v4("224.0.0.0/4", "a multicast address"),
    _v4("255.255.255.255/32", "the broadcast address"),
    _v4("240.0.0.0/4", "a reserved address"),
)

_IPV6_RULES: tuple[_V6Rule, ...] = (
    _v6("::/128", "an unspecified address"),
    _v6("::1/128", "a loopback address"),
    _v6("::ffff:0:0/96", "an IPv4-mapped address", _ipv4_mapped),
    _v6("::ffff:0:0:0/96", "an IPv4-translated address", _low_32_bits),
    _v6("::/96", "an IPv4-compatible address", _low_32_bits),
    _v6("64:ff9b::/96", "a NAT64 address", _low_32_bits),
    _v6("64:ff9b:1::/48", "a local-use NAT64 address"),
    _v6("100::/64", "a discard-only address"),
    _v6("100:0:0:1::/64", "a dummy-prefix address"),
    _v6("2001::/32", "a Teredo address", _teredo_client),
    _v6("2001:2::/48", "a benchmarking address"),
    _v6("2001::/23", "an IETF protocol assignment address"),
    _v6("2001:db8::/32", "a documentation address"),
    _v6("2002::/16", "a 6to4 address", _sixtofour),
    _v6("3fff::/20", "a documentation address"),
    _v6("5f00::/16", "a segment routing (SRv6) address"),
    _v6("fc00::/7", "a private (unique local) address"),
    _v6("fe80::/10", "a link-local address"),
    _v6("fec0::/10", "a site-local address"),
    _v6("ff00::/8", "a multicast address"),
)

_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")


def refusal_reason(address: IPv4Address | IPv6Address | str) -> str | None:
    """Why kinema will not connect to ``address``, or ``None`` if it may.

    The reason completes the sentence "host resolves to X, ..." (e.g. "a loopback
    address"). An IPv6 form that carries an IPv4 address is refused whatever that
    address is; when the carried address would be refused on its own, the reason says
    so too, because that is usually what the client was trying to reach.
    """
    if isinstance(address, str):
        address = ip_address(address)
    if isinstance(address, IPv4Address):
        return _ipv4_refusal(address)
    return _ipv6_refusal(address)


def is_fetchable(address: IPv4Address | IPv6Address | str) -> bool:
    """Whether kinema may connect to ``address``: the negation of ``refusal_reason``."""
    return refusal_reason(address) is None


def _ipv4_refusal(address: IPv4Address) -> str | None:
    for rule in _IPV4_RULES:
        if address in rule.network:
            return rule.reason
    return None


def _ipv6_refusal(address: IPv6Address) -> str | None:
    # A zone index ("%eth0") does not change which range an address is in.
    address = IPv6Address(int(address))
    for rule in _IPV6_RULES:
        if address in rule.network:
            return _with_embedded(rule, address)
    if address not in _IPV6_GLOBAL_UNICAST:
        return "an address outside the IPv6 global unicast range (2000::/3)"
    return None


def _with_embedded(rule: _V6Rule, address: IPv6Address) -> str:
    embedded = rule.embedded(address) if rule.embedded else None
    inner = _ipv4_refusal(embedded) if embedded is not None else None
    if embedded is None or inner is None:
        return rule.reason
    return f"{rule.reason} (carrying {embedded}, {inner})"
