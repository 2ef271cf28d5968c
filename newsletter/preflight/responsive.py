"""Responsive rendering: the personalised HTML in headless Chromium at a phone's and a desktop's width.

At 375 px and 600 px: nothing wider than the viewport (``document.scrollingElement.scrollWidth``
within the width), every multi-column section stacked on the phone, the CTA button visible and
at least 44 px tall on the phone (Apple's and WCAG 2.5.5's minimum tap target). The browser has
no network (see ``chromium.py``), so images from the web show as empty boxes of their stated
size and the open pixel is never fetched. Screenshots of both widths go to ``screenshots_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from newsletter.preflight import chromium
from newsletter.preflight.model import Check, CheckContext, ParsedMessage, failed_on

PHONE, DESKTOP = 375, 600
WIDTHS = (PHONE, DESKTOP)
MIN_TAP_PX = 44
SCREENSHOT_NAME = "preflight-{width}.png"

# Runs in the page. Columns: MJML's ``mj-column-per-*``/``mj-column-px-*`` (and ``.column``),
# grouped by parent; columns inside another column (``mj-group``) are meant to stay side by side.
MEASURE_JS = r"""
((ctaPositions, ctaLabel, publicBase) => {
  const vw = window.innerWidth;
  const box = el => { const r = el.getBoundingClientRect();
    return {x: Math.round(r.left), y: Math.round(r.top + window.scrollY), w: Math.round(r.width), h: Math.round(r.height)}; };
  const describe = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string'
    ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const shown = el => { for (let e = el; e; e = e.parentElement) { const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false; } return true; };
  const offenders = [];
  for (const el of document.body ? document.body.querySelectorAll('*') : []) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1 && shown(el)) offenders.push({element: describe(el), right: Math.round(r.right)});
    if (offenders.length >= 5) break;
  }
  const isColumn = el => /(^|\s)(mj-column-(per|px)-[\w-]+|column)(\s|$)/.test(el.className || '');
  const columns = [...document.querySelectorAll('div, td, th')].filter(isColumn).filter(shown);
  const groups = new Map();
  for (const col of columns) {
    let nested = false;
    for (let e = col.parentElement; e; e = e.parentElement) if (isColumn(e)) { nested = true; break; }
    if (nested) continue;
    const key = col.parentElement;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(col);
  }
  const sections = [];
  for (const cols of groups.values()) {
    if (cols.length < 2) continue;
    const boxes = cols.map(box).filter(b => b.w > 0 && b.h > 0).sort((a, b) => a.y - b.y || a.x - b.x);
    let sideBySide = 0;
    for (let i = 1; i < boxes.length; i++) if (boxes[i].y < boxes[i - 1].y + boxes[i - 1].h - 1) sideBySide++;
    sections.push({columns: boxes.length, stacked: sideBySide === 0, boxes, first: describe(cols[0])});
  }
  const trackedPosition = href => { const m = href && href.startsWith(publicBase + '/c/') && href.match(/\/c\/[^\/?#]+\/(\d+)$/);
    return m ? parseInt(m[1], 10) : null; };
  const anchors = [...document.querySelectorAll('a[href]')].filter(a => {
    const p = trackedPosition(a.getAttribute('href'));
    if (ctaPositions.length) return p !== null && ctaPositions.includes(p);
    return ctaLabel && a.textContent.trim().toLowerCase() === ctaLabel.toLowerCase();
  });
  const cta = anchors.map(a => { const b = box(a); const r = a.getBoundingClientRect();
    return {text: a.textContent.trim().slice(0, 80), ...b, visible: shown(a) && r.width > 0 && r.height > 0
      && r.left >= -1 && r.right <= vw + 1}; }).sort((a, b) => b.h - a.h);
  return {viewport: vw, scrollWidth: document.scrollingElement.scrollWidth,
          height: document.scrollingElement.scrollHeight, offenders, sections, cta};
})
"""


def check(msg: ParsedMessage, ctx: CheckContext) -> Check:
    binary = chromium.find_chromium()
    if binary is None:
        return Check(
            "responsive",
            "warn",
            "headless Chromium is not installed: the layout was not rendered",
            f"install the Debian package {chromium.DEBIAN_PACKAGE} (apt-get install {chromium.DEBIAN_PACKAGE})",
            {"installed": False},
        )
    if not msg.html:
        return Check("responsive", "fail", "there is no HTML part to render", "build the message with an HTML part")
    try:
        measured, shots = render(binary, msg.html, ctx)
    except chromium.BrowserError as exc:
        return Check(
            "responsive",
            "warn",
            f"Chromium could not render the message: {exc}",
            "run `chromium --headless --no-sandbox --dump-dom about:blank` to see what is wrong",
            {"installed": True},
        )
    return judge(measured, shots, ctx)


def render(binary: str, html: str, ctx: CheckContext) -> tuple[dict[int, dict[str, Any]], list[str]]:
    args = json.dumps([sorted(ctx.cta_positions), ctx.cta_label or "", ctx.public_base])[1:-1]
    measured: dict[int, dict[str, Any]] = {}
    shots: list[str] = []
    with chromium.Browser(binary) as browser:
        for width in WIDTHS:
            browser.set_viewport(width, 900)
            browser.load_html(html)
            measured[width] = browser.evaluate(f"{MEASURE_JS}({args})")
            if ctx.screenshots_dir is not None:
                folder = Path(ctx.screenshots_dir)
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / SCREENSHOT_NAME.format(width=width)
                path.write_bytes(browser.screenshot(width))
                shots.append(str(path))
    return measured, shots


def judge(measured: dict[int, dict[str, Any]], shots: list[str], ctx: CheckContext) -> Check:
    problems: list[tuple[str, str]] = []
    details: dict[str, object] = {
        "installed": True,
        "screenshots": shots,
        "widths": {
            str(w): {k: m[k] for k in ("scrollWidth", "height", "offenders", "sections")} | {"cta": m["cta"][:1]}
            for w, m in measured.items()
        },
    }
    for width, m in measured.items():
        if m["scrollWidth"] > width:
            widest = ", ".join(f"{o['element']} (to {o['right']} px)" for o in m["offenders"][:3])
            problems.append(
                (
                    f"at {width} px the page is {m['scrollWidth']} px wide and scrolls sideways"
                    + (f": {widest}" if widest else ""),
                    'remove fixed widths wider than the screen (images need width="100%" or max-width; '
                    'tables width="100%") in the template or article HTML',
                )
            )
    phone = measured.get(PHONE, {})
    side = [s for s in phone.get("sections", []) if not s["stacked"]]
    if side:
        problems.append(
            (
                f"{len(side)} multi-column section(s) stay side by side at {PHONE} px ({side[0]['first']})",
                "let columns stack on phones: MJML <mj-column> in <mj-section> does, <mj-group> does not; "
                "keep the mj-column media query",
            )
        )
    cta = (phone.get("cta") or [None])[0]
    if ctx.cta_positions or ctx.cta_label:
        if cta is None:
            problems.append(
                (
                    f"the CTA button is not in the rendered page at {PHONE} px",
                    "keep the CTA partial (templates/partials/cta.mjml.j2)",
                )
            )
        elif not cta["visible"]:
            problems.append(
                (
                    f'the CTA button "{cta["text"]}" is not visible at {PHONE} px',
                    "make sure the CTA button is not hidden or pushed off screen (templates/partials/cta.mjml.j2)",
                )
            )
        elif cta["h"] < MIN_TAP_PX:
            problems.append(
                (
                    f'the CTA button "{cta["text"]}" is {cta["h"]} px tall at {PHONE} px; a tap target '
                    f"needs at least {MIN_TAP_PX} px",
                    "raise the button's inner-padding or font-size (templates/partials/cta.mjml.j2)",
                )
            )
    if verdict := failed_on("responsive", problems, details):
        return verdict
    sections = len(phone.get("sections", []))
    cta_text = f'; the CTA "{cta["text"]}" is {cta["h"]} px tall at {PHONE} px' if cta else ""
    return Check(
        "responsive",
        "pass",
        f"no sideways scrolling at {PHONE} or {DESKTOP} px; "
        + (f"{sections} multi-column section(s) stack on the phone" if sections else "no multi-column sections")
        + cta_text
        + (f"; screenshots: {', '.join(shots)}" if shots else ""),
        "",
        details,
    )
