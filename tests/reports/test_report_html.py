"""The HTML reports: self-contained (nothing fetched), the same numbers as ``--json``, and in
real headless Chromium the funnel chart is there, visible, has a size and draws the funnel
(bar lengths measured on the screenshot's pixels).

The README's screenshots in ``docs/reports/`` are refreshed by ``scripts/refresh_screenshots.py``
(a script run by hand, not a test that always skips)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from PIL import Image
from test_reports import T0, World, build_report_world, report_of, trends_of

from newsletter.db import session_scope
from newsletter.preflight.chromium import Browser, find_chromium
from newsletter.reports import campaign_html, campaign_report, trends_html, write_html
from newsletter.reports.charts import ACCENT, BOOKED, HUMAN

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found: install Debian package chromium"
)
WIDTH = 1000


@pytest.fixture
def world(engine) -> World:  # type: ignore[no-untyped-def]
    return build_report_world(engine)


class Rows(HTMLParser):
    """Table rows marked with a ``data-*`` attribute: {(attribute, value): [cell texts]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], list[str]] = {}
        self.tiles: dict[str, str] = {}
        self._row: list[str] | None = None
        self._key: tuple[str, str] | None = None
        self._cell: list[str] | None = None
        self._tile: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = {k: v or "" for k, v in attrs if k.startswith("data-")}
        if tag == "tr" and data:
            self._key, self._row = next(iter(data.items())), []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "div" and "data-figure" in data:
            self._tile = data["data-figure"]
            self.tiles[self._tile] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._key is not None:
            self.rows.setdefault(self._key, self._row)
            self._row = self._key = None
        elif tag == "div":
            self._tile = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._tile:
            self.tiles[self._tile] += data.strip()


def parse(html: str) -> Rows:
    rows = Rows()
    rows.feed(html)
    return rows


def pct(value) -> str:  # type: ignore[no-untyped-def]
    return "—" if value is None else f"{100 * value:.1f}%"


def assert_self_contained(html: str) -> None:
    """Opens offline: no script, no stylesheet link, no font, nothing with a scheme to fetch."""
    lowered = html.lower()
    for forbidden in ("<script", "<link", "@import", "@font-face", "<iframe", "<img", "<object", "<embed"):
        assert forbidden not in lowered, forbidden
    targets = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + re.findall(r"url\(\s*['\"]?([^)'\"]*)", html)
    assert targets  # the SVGs do refer to their own definitions
    for target in targets:
        assert target.startswith("#"), target  # only references inside the SVGs


def test_campaign_html_is_self_contained_and_says_what_the_json_says(engine, world) -> None:  # type: ignore[no-untyped-def]
    for name in ("A", "B"):
        data = report_of(engine, world, name)
        html = campaign_html(data)
        assert_self_contained(html)
        assert html.count("<svg") >= 4 and 'id="funnel-chart"' in html
        rows = parse(html)
        f, r = data["funnel"], data["rates"]
        for stage in ("recipients", "delivered", "opened", "clicked", "cta", "leads", "booked"):
            assert rows.rows[("data-stage", stage)][1] == str(f[stage]), stage
            if stage not in ("recipients", "delivered"):
                assert rows.rows[("data-stage", stage)][2] == pct(r[stage]), stage
        assert rows.rows[("data-row", "opens")][1:] == [
            str(data["opens"][k]) for k in ("unique_human", "unique_machine", "total")
        ]
        assert rows.rows[("data-row", "clicks")][1:] == [
            str(data["clicks"][k]) for k in ("unique", "unique_machine", "total")
        ]
        assert rows.rows[("data-row", "cta")][1:3] == [str(data["clicks"]["cta_unique"]), str(data["cta_machine"])]
        for link in data["links"]:
            assert rows.rows[("data-link", str(link["position"]))][3:] == [
                str(link[k]) for k in ("unique_human", "unique_machine", "total")
            ]
        for t in data["by_tag"]:
            assert rows.rows[("data-tag", t["tag"])][:2] == [t["tag"], str(t["recipients"])]
            assert rows.rows[("data-tag", t["tag"])][3] == f"{t['opened']} {pct(t['rates']['opened'])}"
        hourly = data["hourly"]
        assert rows.rows[("data-series", "clicks_human")][1:] == [
            str(sum(hourly["clicks_human"][:h])) for h in (1, 6, 24, 48, 72)
        ]
        assert rows.rows[("data-row", "unsubscribes")][1] == str(data["unsubscribes"])
        assert rows.tiles["cta-rate"] == pct(r["cta"]) and rows.tiles["booked"] == str(f["booked"])
    a = parse(campaign_html(report_of(engine, world, "A"))).rows
    assert a[("data-row", "deferred")][1] == "2 / 1" and a[("data-row", "bounced")][1] == "1 / 0"


def test_trends_html_says_what_the_json_says(engine, world) -> None:  # type: ignore[no-untyped-def]
    data = trends_of(engine)
    html = trends_html(data)
    assert_self_contained(html)
    rows = parse(html).rows
    for w in data["weeks"]:
        cells = rows[("data-week", w["week"])]
        assert cells[1:3] == [str(w["campaigns"]), str(w["funnel"]["delivered"])]
        assert cells[5] == f"{w['funnel']['cta']} {pct(w['rates']['cta'])}"
    for s in data["by_segment"]:
        assert rows[("data-segment", s["segment"])][1:3] == [str(s["campaigns"]), str(s["funnel"]["delivered"])]
    for stage in ("recipients", "delivered", "opened", "clicked", "cta", "leads", "booked"):
        assert rows[("data-stage", stage)][1] == str(data["totals"]["funnel"][stage])
    assert rows[("data-campaign", str(world.campaigns["A"]))][6] == "2 40.0%"


def test_write_html_is_all_or_nothing(engine, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from newsletter.errors import UserError

    data = report_of(engine, world, "A")
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "report.html"
    write_html(target, data)
    assert target.read_text().startswith("<!doctype html>") and list(folder.iterdir()) == [target]
    with pytest.raises(UserError) as caught:
        write_html(folder / "missing" / "r.html", data)
    assert "missing" in str(caught.value)
    with pytest.raises(UserError):
        write_html(folder, data)
    assert list(folder.iterdir()) == [target]  # no temporary file left behind


# --------------------------------------------------------------------------- in the browser


def _longest_run(image: Image.Image, colour: str, tolerance: int = 8) -> int:
    """The longest horizontal run of ``colour``: a funnel bar's length in pixels."""
    import numpy as np

    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    mask = (np.abs(np.asarray(image.convert("RGB"), dtype=int) - target) <= tolerance).all(axis=2)
    best = 0
    for row in mask:
        edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[0::2]).max()))
    return best


def _box(browser: Browser, selector: str) -> dict:
    """The element's border box from the DevTools DOM domain (CSS pixels = screenshot pixels here)."""
    root = browser.call("DOM.getDocument", depth=-1)["root"]["nodeId"]
    node = browser.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
    assert node, f"{selector} is not in the page"
    model = browser.call("DOM.getBoxModel", nodeId=node)["model"]
    xs, ys = model["border"][0::2], model["border"][1::2]
    return {"x": min(xs), "y": min(ys), "width": model["width"], "height": model["height"]}


def _visible(browser: Browser, selector: str) -> bool:
    """Displayed, not hidden, not transparent, and what is at its centre is the chart itself."""
    return bool(
        browser.evaluate(f"""(() => {{
        const el = document.querySelector({selector!r});
        const style = getComputedStyle(el), rect = el.getBoundingClientRect();
        window.scrollTo(0, rect.top + window.scrollY - 10);
        const r = el.getBoundingClientRect();
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, innerHeight / 2 - 10));
        return style.display !== 'none' && style.visibility === 'visible' && Number(style.opacity) > 0
            && (hit === el || el.contains(hit));
    }})()""")
    )


def _screenshot(browser: Browser) -> Image.Image:
    browser.evaluate("window.scrollTo(0, 0)")
    return Image.open(io.BytesIO(browser.screenshot(WIDTH)))


def _open(html: str) -> Browser:
    browser = Browser(CHROMIUM)  # network blocked, page scripts off: as a mail client or a locked-down laptop
    browser.set_viewport(WIDTH, 900)
    browser.load_html(html)
    return browser


@needs_chromium
def test_campaign_report_shows_its_funnel_chart_in_chromium(engine, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = report_of(engine, world, "A")
    with _open(campaign_html(data)) as browser:
        for selector in ("#funnel-chart svg", "#hourly-chart svg", "#links-chart svg", "#tags-chart svg"):
            box = _box(browser, selector)
            assert box["width"] > 600 and box["height"] > 150, (selector, box)
            assert _visible(browser, selector), selector
        page = _screenshot(browser)
        box = _box(browser, "#funnel-chart svg")  # scrolled to the top, as the screenshot
    page.save(tmp_path / "campaign-report.png")
    chart = page.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
    delivered, cta, booked = (_longest_run(chart, colour) for colour in (HUMAN, ACCENT, BOOKED))
    # The bars are the data: delivered 5, "Connect today" 2, booked 2 people on one axis.
    assert booked > 40 and delivered / booked == pytest.approx(5 / 2, rel=0.05)
    assert cta == pytest.approx(booked, rel=0.05)


@needs_chromium
def test_trends_report_shows_its_charts_in_chromium(engine, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _open(trends_html(trends_of(engine))) as browser:
        for selector in ("#trend-chart svg", "#funnel-chart svg", "#growth-chart svg", "#leads-chart svg"):
            box = _box(browser, selector)
            assert box["width"] > 600 and box["height"] > 150, (selector, box)
            assert _visible(browser, selector), selector
        page = _screenshot(browser)
        box = _box(browser, "#funnel-chart svg")
    page.save(tmp_path / "trends-report.png")
    chart = page.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
    assert _longest_run(chart, HUMAN) / _longest_run(chart, BOOKED) == pytest.approx(
        9 / 2, rel=0.05
    )  # delivered 9, booked 2


# --------------------------------------------------------------------------- plain English, sound charts


def test_the_director_never_reads_honeypot(engine, world) -> None:  # type: ignore[no-untyped-def]
    from test_reports import add_hidden_link

    add_hidden_link(engine, world)
    data = report_of(engine, world, "A")
    html = campaign_html(data)
    assert "honeypot" not in html.lower() and "apple_mpp" not in html and "read_more" not in html
    rows = parse(html).rows
    assert rows[("data-link", "4")][1:3] == ["Hidden link (only machines click it)", "hidden link only machines click"]
    assert rows[("data-link", "2")][2] == "“Connect today” button"
    assert (
        "clicked a hidden link only machines click" in html
        and "Apple Mail Privacy Protection fetched the images" in html
    )


def test_an_empty_campaign_report_says_no_engagement_yet(engine, world) -> None:  # type: ignore[no-untyped-def]
    from test_reports import add_silent_campaign

    with session_scope(engine) as s:
        data = campaign_report(s, add_silent_campaign(engine, world))
    html = campaign_html(data)
    assert "No engagement yet: nobody has opened or clicked in the first 72 hours." in html
    assert 'id="hourly-chart"' not in html and 'data-series="opens_human"' not in html  # no empty axes, no zeros
    assert "No clicks yet" in html and 'id="links-chart"' not in html
    assert "No engagement yet: no one with a tag has opened or clicked." in html and 'id="tags-chart"' not in html
    assert 'id="funnel-chart"' in html  # four people were sent it: that bar is real
    # Delivery is unknown without provider reports, which is not zero.
    assert (
        parse(html).rows[("data-row", "delivered-events")][1] == "not known yet: no delivery reports from the provider"
    )


def test_trends_of_an_empty_store_say_so_in_words(engine) -> None:  # type: ignore[no-untyped-def]
    html = trends_html(trends_of(engine))
    assert "<svg" not in html
    for words in (
        "No newsletter went out in these weeks, so no engagement yet.",
        "Nothing sent in these weeks.",
        "No one joined or left the list in these weeks.",
        "No new leads or bookings in these weeks.",
    ):
        assert words in html, words


# Charts are checked on matplotlib's own layout: what is drawn, where, with which tick labels.


def _shown_ticks(axis) -> list[tuple[float, str]]:  # type: ignore[no-untyped-def]
    """(position, label) of the ticks inside the axis' view: the ones drawn."""
    low, high = sorted(axis.get_view_interval())
    return [
        (loc, label.get_text())
        for loc, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
        if low - 1e-9 <= loc <= high + 1e-9 and label.get_text()
    ]


def chart_problems(fig, count_axes=()) -> list:  # type: ignore[no-untyped-def]
    """Whatever a reader would trip over: text cut by the figure's edge, a label cut with "…",
    tick labels on top of each other or repeated, a fractional tick on an axis of people."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    found = []
    drawn, page = fig.get_tightbbox(renderer), fig.bbox_inches  # inches; drawn artists only
    if drawn.x0 < -0.01 or drawn.y0 < -0.01 or drawn.x1 > page.x1 + 0.01 or drawn.y1 > page.y1 + 0.01:
        found.append(("cut by the edge", drawn.bounds, page.bounds))
    found += [("cut with …", t.get_text()) for t in fig.findobj(Text) if "…" in t.get_text()]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = [text for _, text in _shown_ticks(axis)]
            if len(set(labels)) != len(labels):
                found.append(("repeated tick labels", labels))
            boxes = [
                label.get_window_extent(renderer) for label in axis.get_majorticklabels() if label.get_text() in labels
            ]
            found += [("overlapping tick labels", k) for k in range(len(boxes) - 1) if boxes[k].overlaps(boxes[k + 1])]
    for axis in count_axes:
        ticks = [loc for loc, _ in _shown_ticks(axis)]
        if any(abs(t - round(t)) > 1e-9 for t in ticks):
            found.append(("fractional people", ticks))
    return found


def _hourly(**series) -> dict:  # type: ignore[no-untyped-def]
    """The report's ``hourly`` (``campaign._hourly``): zeros but for the series given."""
    keys = ("opens_human", "opens_machine", "clicks_human", "clicks_machine")
    return {"start": T0.isoformat(), "hours": 72, **{k: series.get(k, [0] * 72) for k in keys}}


def _weeks(n: int, rate: float | None, people: int) -> list[dict]:
    """``n`` consecutive ISO weeks up to 2026-W47 with ``rate`` everywhere and up to ``people`` a week."""
    import random

    rnd, out = random.Random(n), []
    for k in range(n):
        year, week, _ = (T0 - timedelta(weeks=n - 1 - k)).isocalendar()
        new = rnd.randint(0, people)
        out.append(
            {
                "week": f"{year}-W{week:02d}",
                "rates": dict.fromkeys(("opened", "clicked", "cta"), rate),
                "growth": {
                    "new": new,
                    "unsubscribed": new // 3,
                    "bounced": 0,
                    "complained": 0,
                    "net": new - new // 3,
                    "subscribers_at_end": 500,
                },
                "leads": {"new": new // 5, "booked": new // 9},
            }
        )
    return out


FUNNEL = dict.fromkeys(("recipients", "delivered", "opened", "clicked", "cta", "leads", "booked"), 0)


def test_a_chart_of_nobody_counts_whole_people() -> None:
    """The 72-hour chart of a campaign nobody engaged with ran 0.00–0.05 "people"."""
    from newsletter.reports import charts

    one_click = [0] * 5 + [1] + [0] * 66
    for fig, axis in [
        (f := charts.hourly_chart(_hourly()), f.axes[0].yaxis),
        (f := charts.hourly_chart(_hourly(clicks_human=one_click)), f.axes[0].yaxis),
        (f := charts.funnel_chart({**FUNNEL, "basis": "sent", "recipients": 1, "delivered": 1}), f.axes[0].xaxis),
        (f := charts.paired_bars(["1. Connect today"], [("people", [0], charts.HUMAN)]), f.axes[0].xaxis),
        (f := charts.growth_chart(_weeks(12, None, 0)), f.axes[0].yaxis),
        (f := charts.leads_chart(_weeks(12, None, 0)), f.axes[0].yaxis),
        (f := charts.leads_chart(_weeks(12, None, 5)), f.axes[0].yaxis),
    ]:
        ticks = [loc for loc, _ in _shown_ticks(axis)]
        assert len(ticks) >= 2 and all(t == int(t) for t in ticks), ticks
        assert chart_problems(fig, [axis]) == []


def test_chart_labels_are_wrapped_not_cut() -> None:
    from newsletter.reports import charts

    labels = [
        "1. Connect today",
        "2. Hidden link (only machines click it)",
        "3. https://rootsmentalwellness.com/blog/the-emergence-of-ketamine-assisted-psychotherapy?utm_source=newsletter",
    ]
    fig = charts.paired_bars(labels, [("people", [24, 0, 3], charts.HUMAN), ("machines", [11, 2, 0], charts.MACHINE)])
    shown = [text for _, text in sorted(_shown_ticks(fig.axes[0].yaxis), reverse=True)]  # top to bottom
    assert [" ".join(text.split("\n")) for text in shown[:2]] == labels[:2]
    assert "".join(shown[2].split("\n")) == labels[2]  # an address breaks anywhere, every character kept
    assert chart_problems(fig, [fig.axes[0].xaxis]) == []
    assert charts.wrap_label("x" * 1000).count("\n") == charts.LABEL_LINES - 1  # a hostile label stays bounded


@pytest.mark.parametrize("width", [7.5, 5.6])  # the HTML report's and the weekly email's
def test_every_chart_fits_and_its_labels_stay_apart(width) -> None:  # type: ignore[no-untyped-def]
    from newsletter.reports import charts

    big = {
        "basis": "mixed",
        "recipients": 300_000,
        "delivered": 299_000,
        "opened": 171_000,
        "clicked": 24_000,
        "cta": 24_000,
        "leads": 2_400,
        "booked": 3,
    }
    cases = [
        (charts.funnel_chart(big, width), "x"),
        (charts.funnel_chart({**FUNNEL, "basis": "sent", "recipients": 300, "delivered": 300}, width), "x"),
        (charts.hourly_chart(_hourly(opens_human=[3] * 72, clicks_machine=[1] + [0] * 71), width), "y"),
        (
            charts.paired_bars(
                ["anxiety", "ptsd"],
                [("opened", [0.004, 0.001], charts.HUMAN), ("clicked", [0.0, 0.0], charts.ACCENT)],
                width,
                percent=True,
            ),
            "",
        ),
        (charts.paired_bars(["anxiety"], [("opened", [1.0], charts.HUMAN)], width, percent=True), ""),
    ]
    for weeks, rate, people in ((1, 0.2, 3), (12, 0.0004, 40_000), (520, 0.1, 200)):
        cases += [
            (charts.trend_chart(_weeks(weeks, rate, people), width), ""),
            (charts.growth_chart(_weeks(weeks, rate, people), width), "y"),
            (charts.leads_chart(_weeks(weeks, rate, people), width), "y"),
        ]
    for fig, counts in cases:
        axes = {"x": [fig.axes[0].xaxis], "y": [fig.axes[0].yaxis], "": []}[counts]
        assert chart_problems(fig, axes) == [], fig.axes[0].get_legend_handles_labels()[1]


def test_percent_axes_and_weeks_read_plainly() -> None:
    from newsletter.reports import charts

    fig = charts.paired_bars(["anxiety"], [("opened", [0.004], charts.HUMAN)], percent=True)
    assert [t for _, t in _shown_ticks(fig.axes[0].xaxis)][:3] == ["0.0%", "0.1%", "0.2%"]  # not 0%, 0%, 0%
    fig = charts.paired_bars(["anxiety"], [("opened", [1.0], charts.HUMAN)], percent=True)
    assert [t for _, t in _shown_ticks(fig.axes[0].xaxis)][-1] == "100%"  # no tick at 120 %
    assert charts.week_label("2026-W47") == "16 Nov" and charts.week_label("2026-W01", with_year=True) == "29 Dec 2025"
    fig = charts.trend_chart(_weeks(12, 0.2, 3))
    assert [t for _, t in _shown_ticks(fig.axes[0].xaxis)][-1] == "16 Nov"  # the latest week, 2026-W47, not "W47"


def test_weeks_read_as_dates(engine, world) -> None:  # type: ignore[no-untyped-def]
    """ISO week codes ("2026-W47") are for scripts; the pages say the Monday's date."""
    html = trends_html(trends_of(engine))
    assert "<h1>Newsletters, 2 Nov 2026 to 29 Nov 2026</h1>" in html
    rows = parse(html).rows
    assert rows[("data-week", "2026-W47")][0] == "16 Nov 2026"
    assert rows[("data-campaign", str(world.campaigns["A"]))][1] == "16 Nov 2026"
    assert "2026-W" not in re.sub(r'data-week="[^"]*"', "", html)
