"""Spam score: SpamAssassin on the exact message, local tests only.

``spamassassin -L -t`` by default (about 2–5 s: it loads its rules each time), or ``spamc``
against a local ``spamd`` when ``NEWSLETTER_SPAMD_HOST`` is set (``host`` or ``host:port``;
run spamd with ``--local`` so it does no network tests either). Bayes is off and the user
preferences are an empty file in a private temporary HOME: the score depends on the message
alone, the same on every machine, and no preferences or Bayes data of the operator are read
or written.

Verdict: fail at 5 points or when a rule that means "this is not a proper newsletter" fires
(HTML-only, text and HTML parts that differ, image-only HTML, long invisible text); warn at 2.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from newsletter.preflight.model import Check, CheckContext, ParsedMessage

DEBIAN_PACKAGE = "spamassassin"
SPAMD_HOST_ENV = "NEWSLETTER_SPAMD_HOST"
TIMEOUT_SECONDS = 60.0
FAIL_AT = 5.0
WARN_AT = 2.0
#: Rules that fail the check whatever the score: each one is a structural fault we can fix.
FAIL_RULES = re.compile(r"^(MIME_HTML_ONLY|MPART_ALT_DIFF.*|HTML_IMAGE_ONLY_.*|LONG_INVISIBLE_TEXT)$")
RULE_HINTS = {
    "MIME_HTML_ONLY": "send a text/plain part beside the HTML (the text template, templates/*.txt.j2)",
    "MPART_ALT_DIFF": "make the text part carry the same content as the HTML (templates/*.txt.j2)",
    "HTML_IMAGE_ONLY": "add real text: a message that is mostly images looks like spam",
    "LONG_INVISIBLE_TEXT": "remove hidden text (keep the preheader short)",
}


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    description: str


@dataclass(frozen=True)
class SpamResult:
    score: float
    threshold: float
    rules: tuple[Rule, ...]
    tool: str


class SpamAssassinMissing(Exception):
    pass


_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*?)\s*$")
_CONTINUATION = re.compile(r"^\s{20,}(\S.*?)\s*$")
_SUMMARY = re.compile(r"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points?, (-?\d+(?:\.\d+)?) required\)")
_SPAMC_FIRST = re.compile(r"^\s*(-?\d+(?:\.\d+)?)/(-?\d+(?:\.\d+)?)\s*$", re.MULTILINE)


def parse_report(output: str) -> tuple[float | None, float | None, tuple[Rule, ...]]:
    """(score, threshold, rules) from SpamAssassin's report (``-t`` or ``spamc -R`` output).

    The message itself is echoed first by ``-t``, so the report read is the last one.
    """
    summaries = list(_SUMMARY.finditer(output))
    score = threshold = None
    start = 0
    if summaries:
        last = summaries[-1]
        score, threshold = float(last.group(1)), float(last.group(2))
        start = last.end()
    rules: list[Rule] = []
    lines = output[start:].splitlines()
    table = False
    for line in lines:
        if not table:
            table = line.startswith("----")
            continue
        if not line.strip():
            if rules:
                break
            continue
        match = _LINE.match(line)
        if match:
            rules.append(Rule(match.group(2), float(match.group(1)), match.group(3)))
            continue
        more = _CONTINUATION.match(line)
        if more and rules:
            last_rule = rules[-1]
            rules[-1] = Rule(last_rule.name, last_rule.points, f"{last_rule.description} {more.group(1)}".strip())
            continue
        break
    return score, threshold, tuple(rules)


_CACHE: dict[str, SpamResult] = {}


def _run(command: list[str], eml: bytes, home: str) -> subprocess.CompletedProcess[bytes]:
    # SpamAssassin keeps per-user state under $HOME and temporary copies under $TMPDIR: both go
    # to a folder that is deleted afterwards. (It still makes an empty ~/.spamassassin of the
    # real user as its "global state dir"; the command line offers no way around that.)
    env = {**os.environ, "HOME": home, "TMPDIR": home, "LC_ALL": "C.UTF-8"}
    return subprocess.run(command, input=eml, capture_output=True, timeout=TIMEOUT_SECONDS, env=env, check=False)


def score_message(eml: bytes, spamd_host: str | None = None) -> SpamResult:
    """Run SpamAssassin (or spamc) on ``eml``. Raises SpamAssassinMissing, TimeoutExpired, RuntimeError.

    Results are remembered per message hash for the life of the process (tests ask twice).
    ``spamd_host`` is ``settings.spamd_host`` (``NEWSLETTER_SPAMD_HOST``, read by ``config`` only);
    None or empty runs ``spamassassin -L -t`` here.
    """
    digest = hashlib.sha256(eml).hexdigest()
    spamd = (spamd_host or "").strip()
    key = f"{spamd}:{digest}"
    if key in _CACHE:
        return _CACHE[key]
    with tempfile.TemporaryDirectory(prefix="newsletter-spam-") as home:
        if spamd:
            binary = shutil.which("spamc")
            if not binary:
                raise SpamAssassinMissing(f"{SPAMD_HOST_ENV} is set but spamc is not installed (Debian package spamc)")
            host, port = _host_port(spamd)
            command = [binary, "-x", "-R", "-d", host, "-s", str(max(len(eml) + 1024, 512_000))]
            if port:
                command += ["-p", port]
            tool = f"spamc → spamd at {spamd}"
        else:
            binary = shutil.which("spamassassin")
            if not binary:
                raise SpamAssassinMissing("SpamAssassin is not installed")
            prefs = os.path.join(home, "user_prefs")
            open(prefs, "w").close()
            command = [binary, "-L", "-t", "-x", "-p", prefs, "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"]
            tool = "spamassassin -L -t"
        completed = _run(command, eml, home)
    output = completed.stdout.decode("utf-8", "replace")
    score, threshold, rules = parse_report(output)
    if spamd:
        first = _SPAMC_FIRST.search(output)
        if first:
            score, threshold = float(first.group(1)), float(first.group(2))
    if score is None:
        stderr = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(
            f"{tool} gave no report (exit {completed.returncode}" + (f": {stderr[-1]}" if stderr else "") + ")"
        )
    result = SpamResult(score=score, threshold=threshold or 5.0, rules=rules, tool=tool)
    _CACHE[key] = result
    return result


def _host_port(value: str) -> tuple[str, str]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port or "")."""
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", value)
    if not match:
        return value, ""
    return (match.group(1) or match.group(3) or value), (match.group(2) or match.group(4) or "")


def _hint(rule: str) -> str:
    for prefix, hint in RULE_HINTS.items():
        if rule.startswith(prefix):
            return hint
    return ""


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    try:
        result = score_message(msg.eml, ctx.spamd_host)
    except SpamAssassinMissing as exc:
        return Check(
            "spam",
            "warn",
            f"{exc}: the spam score was not checked",
            f"install the Debian package {DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE})",
            {"installed": False},
        )
    except subprocess.TimeoutExpired:
        return Check(
            "spam",
            "warn",
            f"SpamAssassin did not answer within {TIMEOUT_SECONDS:.0f} s: the spam score was not checked",
            f"check the SpamAssassin installation (spamassassin --lint), or run a local spamd and set {SPAMD_HOST_ENV}",
            {"installed": True},
        )
    except (RuntimeError, OSError) as exc:
        return Check(
            "spam",
            "warn",
            f"SpamAssassin could not score the message: {exc}",
            "check the SpamAssassin installation (spamassassin --lint)",
            {"installed": True},
        )

    scoring = [r for r in result.rules if r.points != 0]
    fired = ", ".join(f"{r.name} {r.points:+.1f}" for r in scoring) or "no scoring rules"
    details = {
        "installed": True,
        "tool": result.tool,
        "score": result.score,
        "threshold": result.threshold,
        "rules": [{"name": r.name, "points": r.points, "description": r.description} for r in result.rules],
    }
    blocking = [r.name for r in result.rules if FAIL_RULES.match(r.name)]
    summary = f"score {result.score:.1f} ({fired})"
    if result.score >= FAIL_AT or blocking:
        why = []
        if result.score >= FAIL_AT:
            why.append(f"score {result.score:.1f} is at or over {FAIL_AT:.0f}")
        if blocking:
            why.append("structural rule(s) fired: " + ", ".join(blocking))
        hints = [h for h in (_hint(name) for name in blocking) if h] or [
            "look at the rules below and change the content or template they point at"
        ]
        return Check("spam", "fail", f"{'; '.join(why)} — {summary}", "; ".join(dict.fromkeys(hints)), details)
    if result.score >= WARN_AT:
        return Check(
            "spam",
            "warn",
            f"{summary}: at or over {WARN_AT:.0f}, some filters will file it as spam",
            "look at the rules that fired and change the content or template they point at",
            details,
        )
    return Check("spam", "pass", summary, "", details)
