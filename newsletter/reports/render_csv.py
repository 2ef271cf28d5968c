"""The reports as one long CSV table: ``section,item,metric,value``.

A report has several tables (funnel, links, tags, weeks, …); one long table carries all of
them, opens in any spreadsheet (filter on ``section``, pivot on ``metric``) and is the JSON
report flattened, value for value, so the two cannot disagree:

* a top-level value: ``report,,subject,Hello``
* a nested value: ``funnel,,opened,4``, ``opens,,unique_human,3``, ``rates,,cta,0.4``
* a row of a list: ``links,2,unique_human,2`` (links by position, tags by tag, weeks by week,
  campaigns by id, segments by name); its nested values join with a dot: ``weeks,2026-W47,rates.cta,0.4``
* a series: ``hourly,0,opens_human,1`` (the hour is the item)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

HEADER = ("section", "item", "metric", "value")
#: The field that names a row, per list.
ROW_KEYS = {
    "links": "position",
    "by_tag": "tag",
    "weeks": "week",
    "campaigns": "campaign_id",
    "best": "campaign_id",
    "worst": "campaign_id",
    "nurture": "campaign_id",
    "by_segment": "segment",
}


def _nested(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _nested(f"{prefix}.{key}" if prefix else str(key), inner)
    else:
        yield prefix, value


def rows(report: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """``(section, item, metric, value)`` for every value of the report, in the JSON's order."""
    for key, value in report.items():
        if isinstance(value, list) and key in ROW_KEYS:
            for row in value:
                item = str(row[ROW_KEYS[key]])
                for metric, inner in _nested("", {k: v for k, v in row.items() if k != ROW_KEYS[key]}):
                    yield key, item, metric, inner
        elif isinstance(value, dict):
            for metric, inner in _nested("", value):
                if isinstance(inner, list):  # a series: one row per step
                    for index, step in enumerate(inner):
                        yield key, str(index), metric, step
                else:
                    yield key, "", metric, inner
        else:
            yield "report", "", key, value


#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection): a
#: subject or link label is staff-written, but quoting costs nothing. Numbers are left alone.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for section, item, metric, value in rows(report):
        writer.writerow((section, item, metric, _cell(value)))
    return buffer.getvalue()
