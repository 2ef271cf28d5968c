"""Keep only what is needed of a reader's address.

Events store the network, never the full address: an IPv4 address is cut to its /24, an IPv6
address to its /48. Enough to tell a scanner farm from a household, not enough to point at one
device. Classification looks at the full address in memory and then forgets it.
"""

from __future__ import annotations

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def truncate_ip(ip: str | None) -> str | None:
    """``"203.0.113.77"`` → ``"203.0.113.0/24"``; IPv6 → its /48; anything unparsable → ``None``.

    An IPv4-mapped IPv6 address (``::ffff:203.0.113.77``, as dual-stack servers report) is
    treated as the IPv4 address it carries. A zone id (``fe80::1%eth0``) is dropped.
    """
    if not ip or not isinstance(ip, str):
        return None
    try:
        address = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
