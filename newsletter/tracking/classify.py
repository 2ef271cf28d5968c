"""Human or machine? One verdict per open or click, with a stable reason.

Mail security gateways click every link and fetch every image to look for malware; Apple Mail
Privacy Protection fetches every image when a message is delivered. Counting those as readers
inflates opens and clicks and, worse, would turn a scanner's click on "Connect today" into a
lead. So every event is stored with ``is_machine`` and ``machine_reason``; headline rates and
leads use human events only, raw counts stay visible.

Rules, first match wins. The reason strings are stored in ``events.machine_reason`` and are
part of the reports' vocabulary: do not rename them.

=========================  =====================================================================
reason                     when
=========================  =====================================================================
head_request               the request is ``HEAD``: a browser following a link or loading an
                           image sends ``GET``; link checkers send ``HEAD``
honeypot                   a click on a link of kind ``honeypot`` (a link no person can see)
no_user_agent              the ``User-Agent`` header is missing or blank
scanner_user_agent         the user agent contains a pattern from ``data/machine_agents.txt``
apple_mpp                  an open whose user agent is exactly ``Mozilla/5.0`` (what Apple's
                           MPP proxy sends), or an open from an ``apple_mpp`` network of
                           ``data/machine_networks.txt``
scanner_network            the address is in a ``scanner_network`` of ``data/machine_networks.txt``
too_fast_after_delivery    a click less than ``min_click_seconds`` (default 5) after the delivery
                           was sent: nobody opens, reads and clicks that fast (a click before
                           ``sent_at``, i.e. a negative delay, counts as too fast too)
=========================  =====================================================================

The lists are data files, loaded once per process and editable without code changes; a
:class:`Classifier` with other files or another delay can be passed to :func:`classify`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parent / "data"
AGENTS_FILE = DATA_DIR / "machine_agents.txt"
NETWORKS_FILE = DATA_DIR / "machine_networks.txt"
DEFAULT_MIN_CLICK_SECONDS = 5.0

#: Every reason a verdict may carry, with what it means (for reports and docs).
REASONS: dict[str, str] = {
    "head_request": "HEAD request (link checker)",
    "honeypot": "click on an invisible honeypot link",
    "no_user_agent": "no User-Agent header",
    "scanner_user_agent": "user agent of a scanner, bot or HTTP library",
    "apple_mpp": "Apple Mail Privacy Protection proxy",
    "scanner_network": "address in a known mail-scanner network",
    "too_fast_after_delivery": "click within seconds of sending",
}

#: The exact user agent Apple's MPP image proxy sends.
APPLE_MPP_USER_AGENT = "Mozilla/5.0"

_NETWORK_REASONS = ("apple_mpp", "scanner_network")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Verdict:
    is_machine: bool
    reason: str | None = None


HUMAN = Verdict(False, None)


def _data_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def load_agent_patterns(path: Path = AGENTS_FILE) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.lower() for line in _data_lines(path)))


def load_networks(path: Path = NETWORKS_FILE) -> tuple[tuple[str, Network], ...]:
    """``(reason, network)`` pairs; a malformed line fails loudly, naming file and line."""
    out: list[tuple[str, Network]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 2 or parts[0] not in _NETWORK_REASONS:
                raise ValueError(f"expected '<{'|'.join(_NETWORK_REASONS)}> <CIDR>'")
            out.append((parts[0], ipaddress.ip_network(parts[1], strict=False)))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return tuple(out)


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Classifier:
    agent_patterns: tuple[str, ...]
    networks: tuple[tuple[str, Network], ...]
    min_click_seconds: float = DEFAULT_MIN_CLICK_SECONDS

    @classmethod
    def from_files(cls, agents: Path = AGENTS_FILE, networks: Path = NETWORKS_FILE,
                   min_click_seconds: float = DEFAULT_MIN_CLICK_SECONDS) -> "Classifier":
        return cls(load_agent_patterns(agents), load_networks(networks), min_click_seconds)

    def network_reason(self, ip: str | None) -> str | None:
        address = _address(ip)
        if address is None:
            return None
        for reason, network in self.networks:
            if address.version == network.version and address in network:
                return reason
        return None

    def classify(self, *, kind: Literal["open", "click"], user_agent: str | None, ip: str | None,
                 method: str, seconds_since_sent: float | None, link_kind: str | None = None) -> Verdict:
        if method.upper() == "HEAD":
            return Verdict(True, "head_request")
        if kind == "click" and link_kind == "honeypot":
            return Verdict(True, "honeypot")
        agent = (user_agent or "").strip()
        if not agent:
            return Verdict(True, "no_user_agent")
        lowered = agent.lower()
        if any(pattern in lowered for pattern in self.agent_patterns):
            return Verdict(True, "scanner_user_agent")
        network = self.network_reason(ip)
        if kind == "open" and (agent == APPLE_MPP_USER_AGENT or network == "apple_mpp"):
            return Verdict(True, "apple_mpp")
        if network == "scanner_network":
            return Verdict(True, "scanner_network")
        if kind == "click" and seconds_since_sent is not None and seconds_since_sent < self.min_click_seconds:
            return Verdict(True, "too_fast_after_delivery")
        return HUMAN


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The shipped lists, read once per process."""
    return Classifier.from_files()


def classify(*, kind: Literal["open", "click"], user_agent: str | None, ip: str | None, method: str,
             seconds_since_sent: float | None, link_kind: str | None = None,
             classifier: Classifier | None = None) -> Verdict:
    """Classify one open or click (see the module docstring for the rules)."""
    return (classifier or default_classifier()).classify(
        kind=kind, user_agent=user_agent, ip=ip, method=method,
        seconds_since_sent=seconds_since_sent, link_kind=link_kind)
