"""The campaign report as a terminal table (rich): the figures of ``campaign_report``."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def print_report(console: Console, data: dict[str, Any]) -> None:
    sent = data["sent"]
    console.print(f"[bold]Campaign {data['campaign_id']}[/] “{data['subject']}” — {data['status']}")
    table = Table("", "people", "rate", "machines", "raw events", title="Engagement (rates are of sent)", title_justify="left")
    table.add_row("recipients", str(data["recipients"]), "", "", "")
    table.add_row("sent", str(sent), "", "", "")
    if data["delivered"] or data["bounced"]:
        table.add_row("delivered", str(data["delivered"]), _rate(data["delivered"], sent), "", "")
    else:  # the outbox, or SendGrid's Event Webhook not (yet) heard from: unknown is not zero
        table.add_row("delivered", "—", "no provider events yet", "", "")
    table.add_row("opened", str(data["opens"]["unique_human"]), _rate(data["opens"]["unique_human"], sent),
                  str(data["opens"]["unique_machine"]), str(data["opens"]["total"]))
    table.add_row("clicked", str(data["clicks"]["unique"]), _rate(data["clicks"]["unique"], sent),
                  str(data["clicks"]["unique_machine"]), str(data["clicks"]["total"]))
    table.add_row("clicked “Connect today”", str(data["clicks"]["cta_unique"]), _rate(data["clicks"]["cta_unique"], sent), "", "")
    table.add_row("leads", str(data["leads"]), _rate(data["leads"], sent), "", "")
    table.add_row("unsubscribed", str(data["unsubscribes"]), _rate(data["unsubscribes"], sent), "", "")
    table.add_row("bounced", str(data["bounced"]), "", "", "")
    table.add_row("complaints", str(data["complaints"]), "", "", "")
    console.print(table)
    problems = {k: data[k] for k in ("failed", "ambiguous", "suppressed", "queued") if data[k]}
    if problems:
        console.print("Ledger: " + ", ".join(f"{v} {k}" for k, v in problems.items()))
    if data["links"]:
        links = Table("#", "kind", "link", "people", "raw", title="Links", title_justify="left")
        for link in data["links"]:
            links.add_row(str(link["position"]), link["kind"], link["label"] or link["url"], str(link["unique_human"]), str(link["total"]))
        console.print(links)
