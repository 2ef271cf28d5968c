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
burst_clicks               clicks on ``burst_links`` (default 3) or more different links of one
                           message within ``burst_seconds`` (default 1): a scanner walking the
                           links. Every click of the burst is machine, the earlier ones too
                           (:func:`find_bursts`; the callers re-mark what they stored before)
sg_machine_open            a SendGrid open event with ``sg_machine_open: true`` (SendGrid's own
                           verdict, e.g. Apple's proxy); checked right after ``honeypot``
too_fast_confirm           a "continue to booking" request less than ``cta_confirm_min_seconds``
                           after the page was served (a machine following the page's link);
                           decided by :func:`newsletter.tracking.cta.confirm_cta`
=========================  =====================================================================

Human verdicts may carry a *doubt*: the click is probably a person, but a careful scanner could
look the same. A doubt never makes an event machine; it only changes what a click on the CTA
does (a "continue to booking" page, and the lead counts when the person continues).

=========================  =====================================================================
doubt                      when (clicks only, human verdicts only)
=========================  =====================================================================
quick_click                between ``min_click_seconds`` (5) and ``uncertain_click_seconds`` (30)
                           after sending: scanners that wait a little land here, and so do
                           people reading on the phone as it buzzes
unknown_agent              a user agent that does not start with ``Mozilla/``: every browser and
                           in-app web view sends that prefix; a client we do not know does not
no_accept_language         the request has no ``Accept-Language`` header: every browser sends
                           one, scripted fetchers mostly do not (the webhook cannot tell, so
                           ``accept_language=None`` means "unknown", not "absent")
=========================  =====================================================================

The lists are data files, loaded once per process and editable without code changes; a
:class:`Classifier` with other files or other delays can be passed to :func:`classify`. The web
app's pixel and redirect and the SendGrid webhook all call :func:`classify`: one set of rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

DATA_DIR = Path(__file__).resolve().parent / "data"
AGENTS_FILE = DATA_DIR / "machine_agents.txt"
NETWORKS_FILE = DATA_DIR / "machine_networks.txt"
DEFAULT_MIN_CLICK_SECONDS = 5.0
DEFAULT_UNCERTAIN_CLICK_SECONDS = 30.0
DEFAULT_BURST_LINKS = 3
DEFAULT_BURST_SECONDS = 1.0

#: Every reason a verdict may carry, with what it means (for reports and docs).
REASONS: dict[str, str] = {
    "head_request": "HEAD request (link checker)",
    "honeypot": "click on an invisible honeypot link",
    "no_user_agent": "no User-Agent header",
    "scanner_user_agent": "user agent of a scanner, bot or HTTP library",
    "apple_mpp": "Apple Mail Privacy Protection proxy",
    "scanner_network": "address in a known mail-scanner network",
    "too_fast_after_delivery": "click within seconds of sending",
    "burst_clicks": "many links of one message clicked within a second",
    "sg_machine_open": "SendGrid flagged the open as a machine open",
    "too_fast_confirm": "continued to booking faster than a person can read the page",
}

#: Why a human verdict may still be doubted (see the module docstring).
DOUBTS: dict[str, str] = {
    "quick_click": "clicked between 5 and 30 seconds after sending",
    "unknown_agent": "user agent of no known browser",
    "no_accept_language": "no Accept-Language header",
}

#: The exact user agent Apple's MPP image proxy sends.
APPLE_MPP_USER_AGENT = "Mozilla/5.0"

_NETWORK_REASONS = ("apple_mpp", "scanner_network")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Verdict:
    is_machine: bool
    reason: str | None = None
    doubt: str | None = None  # only on human verdicts: see DOUBTS

    @property
    def uncertain(self) -> bool:
        return not self.is_machine and self.doubt is not None


HUMAN = Verdict(False, None)
# Verdicts are immutable: one instance per reason and per doubt, shared by every event.
_MACHINE = {reason: Verdict(True, reason) for reason in REASONS}
_DOUBTED = {doubt: Verdict(False, None, doubt) for doubt in DOUBTS}
_AGENTS_KEPT = 4096


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


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: A dotted-quad IPv4 address as :mod:`ipaddress` accepts it (no leading zeros, 0-255 each);
#: the groups are the four octets, already in their canonical spelling.
IPV4 = re.compile(r"\.".join([_OCTET] * 4))


def ipv4_int(ip: str) -> int | None:
    """A dotted-quad IPv4 address as an int, ``None`` for anything else (IPv6, junk). Accepts
    exactly what :mod:`ipaddress` accepts for IPv4 (no leading zeros, 0-255), at a tenth of its
    cost; the webhook sees a thousand addresses per post, mostly different."""
    match = IPV4.fullmatch(ip.strip())
    if match is None:
        return None
    a, b, c, d = match.groups()
    return int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return _parse_address(ip) if ip and isinstance(ip, str) else None


@lru_cache(maxsize=16384)
def _parse_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per distinct address (readers, proxies and scanners come back): parsing is
    most of a verdict's cost."""
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
    uncertain_click_seconds: float = DEFAULT_UNCERTAIN_CLICK_SECONDS
    burst_links: int = DEFAULT_BURST_LINKS
    burst_seconds: float = DEFAULT_BURST_SECONDS

    @classmethod
    def from_files(
        cls,
        agents: Path = AGENTS_FILE,
        networks: Path = NETWORKS_FILE,
        min_click_seconds: float = DEFAULT_MIN_CLICK_SECONDS,
        uncertain_click_seconds: float = DEFAULT_UNCERTAIN_CLICK_SECONDS,
        burst_links: int = DEFAULT_BURST_LINKS,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
    ) -> Classifier:
        return cls(
            load_agent_patterns(agents),
            load_networks(networks),
            min_click_seconds,
            uncertain_click_seconds,
            burst_links,
            burst_seconds,
        )

    @cached_property
    def _agent_pattern(self) -> re.Pattern[str] | None:
        """All agent patterns as one alternation: one scan of the user agent, not forty."""
        return re.compile("|".join(map(re.escape, self.agent_patterns))) if self.agent_patterns else None

    @cached_property
    def _v4_ranges(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(
            (reason, int(net.network_address), int(net.netmask)) for reason, net in self.networks if net.version == 4
        )

    def network_reason(self, ip: str | None) -> str | None:
        value = ipv4_int(ip) if ip and isinstance(ip, str) else None
        if value is not None:  # the common case, without ipaddress objects
            for reason, start, mask in self._v4_ranges:
                if value & mask == start:
                    return reason
            return None
        address = _address(ip)
        if address is None:
            return None
        for reason, network in self.networks:
            if address.version == network.version and address in network:
                return reason
        return None

    @cached_property
    def _agents_seen(self) -> dict[str, bool]:
        """User agent → matches a scanner pattern. Readers' agents repeat (a few browser and
        mail-app builds carry most of the traffic), so each is searched once; bounded below."""
        return {}

    def scanner_agent(self, agent: str) -> bool:
        """Whether the (stripped, non-empty) user agent contains a scanner pattern."""
        seen = self._agents_seen
        found = seen.get(agent)
        if found is None:
            pattern = self._agent_pattern
            found = pattern is not None and pattern.search(agent.lower()) is not None
            if len(seen) >= _AGENTS_KEPT:
                seen.clear()
            seen[agent] = found
        return found

    def classify(
        self,
        *,
        kind: Literal["open", "click"],
        user_agent: str | None,
        ip: str | None,
        method: str,
        seconds_since_sent: float | None,
        link_kind: str | None = None,
        accept_language: str | None = None,
        burst: bool = False,
        sg_machine_open: bool = False,
    ) -> Verdict:
        if method != "GET" and method.upper() == "HEAD":
            return _MACHINE["head_request"]
        if kind == "click" and link_kind == "honeypot":
            return _MACHINE["honeypot"]
        if kind == "open" and sg_machine_open:
            return _MACHINE["sg_machine_open"]
        agent = (user_agent or "").strip()
        if not agent:
            return _MACHINE["no_user_agent"]
        if self.scanner_agent(agent):
            return _MACHINE["scanner_user_agent"]
        network = self.network_reason(ip)
        if kind == "open" and (agent == APPLE_MPP_USER_AGENT or network == "apple_mpp"):
            return _MACHINE["apple_mpp"]
        if network == "scanner_network":
            return _MACHINE["scanner_network"]
        if kind != "click":
            return HUMAN
        if seconds_since_sent is not None and seconds_since_sent < self.min_click_seconds:
            return _MACHINE["too_fast_after_delivery"]
        if burst:
            return _MACHINE["burst_clicks"]
        if seconds_since_sent is not None and seconds_since_sent < self.uncertain_click_seconds:
            return _DOUBTED["quick_click"]
        if not agent.startswith("Mozilla/"):
            return _DOUBTED["unknown_agent"]
        if accept_language is not None and not accept_language.strip():
            return _DOUBTED["no_accept_language"]
        return HUMAN

    def find_bursts(self, clicks: Sequence[tuple[float, Hashable]]) -> set[int]:
        """Indexes of the clicks (``(seconds, link)`` of ONE message, any order) that belong to a
        burst: ``burst_links`` or more different links within ``burst_seconds``."""
        return find_bursts(clicks, self.burst_links, self.burst_seconds)


def find_bursts(
    clicks: Sequence[tuple[float, Hashable]], links: int = DEFAULT_BURST_LINKS, seconds: float = DEFAULT_BURST_SECONDS
) -> set[int]:
    """See :meth:`Classifier.find_bursts`. Webhook timestamps are whole seconds, so two clicks
    one second apart are "within a second" (the window is closed)."""
    order = sorted(range(len(clicks)), key=lambda i: clicks[i][0])
    marked: set[int] = set()
    start = 0
    for end in range(len(order)):
        while clicks[order[end]][0] - clicks[order[start]][0] > seconds:
            start += 1
        window = order[start : end + 1]
        if len({clicks[i][1] for i in window}) >= links:
            marked.update(window)
    return marked


@lru_cache(maxsize=1)
def default_classifier() -> Classifier:
    """The shipped lists, read once per process."""
    return Classifier.from_files()


def classify(
    *,
    kind: Literal["open", "click"],
    user_agent: str | None,
    ip: str | None,
    method: str,
    seconds_since_sent: float | None,
    link_kind: str | None = None,
    accept_language: str | None = None,
    burst: bool = False,
    sg_machine_open: bool = False,
    classifier: Classifier | None = None,
) -> Verdict:
    """Classify one open or click (see the module docstring for the rules).

    ``accept_language``: the header's value, ``""`` when the request had none, ``None`` when the
    caller cannot know (the webhook). ``burst``: the caller found this click inside a burst
    (:func:`find_bursts`). ``sg_machine_open``: SendGrid's flag on its open events.
    """
    return (classifier or default_classifier()).classify(
        kind=kind,
        user_agent=user_agent,
        ip=ip,
        method=method,
        seconds_since_sent=seconds_since_sent,
        link_kind=link_kind,
        accept_language=accept_language,
        burst=burst,
        sg_machine_open=sg_machine_open,
    )
