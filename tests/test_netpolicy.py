from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from kinema.media.netpolicy import is_fetchable, refusal_reason

REFUSED: list[tuple[str, str]] = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped address (carrying 127.0.0.1, a loopback address)"),
    ("::ffff:10.0.0.1", "IPv4-mapped address (carrying 10.0.0.1, a private address)"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::ffff:0:7f00:1", "IPv4-translated"),
    ("::127.0.0.1", "IPv4-compatible address (carrying 127.0.0.1, a loopback address)"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "NAT64 address (carrying 127.0.0.1, a loopback address)"),
    ("64:ff9b::a9fe:a9fe", "NAT64 address (carrying 169.254.169.254, a link-local address)"),
    ("64:ff9b::808:808", "NAT64"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:7f00:1::", "6to4 address (carrying 127.0.0.1, a loopback address)"),
    ("2002:808:808::1", "6to4"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "IETF protocol assignment"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("5f00::1", "segment routing"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("4000::1", "outside the IPv6 global unicast range"),
    ("1::1", "outside the IPv6 global unicast range"),
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_refuses_special_address_with_reason(address: str, reason: str) -> None:
    found = refusal_reason(address)

    assert found is not None
    assert reason in found
    assert not is_fetchable(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_allows_public_address(address: str) -> None:
    assert refusal_reason(address) is None
    assert is_fetchable(address)


def test_reason_reads_as_a_noun_phrase() -> None:
    assert refusal_reason("127.0.0.1") == "a loopback address"
    assert refusal_reason("::1") == "a loopback address"


def test_accepts_address_objects_as_well_as_text() -> None:
    assert refusal_reason(IPv4Address("10.1.2.3")) == "a private address"
    assert refusal_reason(IPv6Address("::ffff:192.168.0.1")) is not None
    assert refusal_reason(IPv4Address("8.8.4.4")) is None


def test_mapped_form_of_a_public_address_is_still_refused() -> None:
    # The embedded address is public, but a mapped form on the wire has no legitimate use.
    assert refusal_reason("::ffff:8.8.8.8") == "an IPv4-mapped address"


def test_invalid_text_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        refusal_reason("not-an-address")
