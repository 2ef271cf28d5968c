"""Keep only what is needed of a reader's address.

Events store the network, never the full address: an IPv4 address is cut to its /24, an IPv6
address to its /48. Enough to tell a scanner farm from a household, not enough to point at one
device. Classification looks at the full address in memory and then forgets it.

``NEWSLETTER_IP_STORAGE=hash`` keeps a keyed hash instead (:func:`hash_ip`), and ``none`` keeps
nothing. Raw details of old events are pruned by :func:`newsletter.tracking.retention.prune_event_details`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache

from newsletter.tracking.classify import IPV4

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def truncate_ip(ip: str | None) -> str | None:
    """``"203.0.113.77"`` → ``"203.0.113.0/24"``; IPv6 → its /48; anything unparsable → ``None``.

    An IPv4-mapped IPv6 address (``::ffff:203.0.113.77``, as dual-stack servers report) is
    treated as the IPv4 address it carries. A zone id (``fe80::1%eth0``) is dropped. Cached per
    distinct address (readers, proxies and scanners come back).
    """
    if not ip or not isinstance(ip, str):
        return None
    plain = IPV4.fullmatch(ip.strip())
    if plain is not None:  # a plain IPv4 address: no parsing needed, its octets are canonical
        return f"{plain[1]}.{plain[2]}.{plain[3]}.0/{IPV4_PREFIX}"
    return _truncate(ip)


@lru_cache(maxsize=16384)
def _truncate(ip: str) -> str | None:
    address = _address(ip)
    if address is None:
        return None
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip or not isinstance(ip, str):
        return None
    try:
        address = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address


def hash_ip(ip: str | None, key: bytes) -> str | None:
    """``"h:"`` + 32 hex digits of HMAC-SHA256(key, address): tells repeat visits from one
    address apart from many addresses, and says nothing about where the address is. Keyed,
    because the IPv4 space is small enough to hash whole: without the key it cannot be walked."""
    address = _address(ip)
    if address is None:
        return None
    return "h:" + hmac.new(key, address.packed, hashlib.sha256).hexdigest()[:32]


def store_ip(ip: str | None, mode: str = "truncate", key: bytes | None = None) -> str | None:
    """What goes into ``events.ip_prefix`` for ``NEWSLETTER_IP_STORAGE`` = ``mode``."""
    if mode == "truncate":
        return truncate_ip(ip)
    if mode == "hash":
        if not key:
            raise ValueError("hashing addresses needs a key")
        return hash_ip(ip, key)
    if mode == "none":
        return None
    raise ValueError(f"unknown address storage mode {mode!r}")
