"""``newsletter article import|list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import current_settings, out
from newsletter.cli.output import JsonOpt, engine_for, print_json
from newsletter.terminal_text import DataTable, esc

app = typer.Typer(help="Import and list articles.", no_args_is_help=True)


@app.command("import")
def article_import(
    path: Annotated[Path, typer.Argument(help="A .txt (seed format), .md, .html or RSS file.")],
    as_json: JsonOpt = False,
) -> None:
    """Import an article; re-importing the same file updates it in place."""
    from newsletter.campaigns import import_article
    from newsletter.db import session_scope

    settings = current_settings()
    with session_scope(engine_for(settings)) as session:
        imported = import_article(session, path)
        data = {
            "slug": imported.row.slug,
            "id": imported.row.id,
            "title": imported.article.title,
            "outcome": imported.outcome,
            "words": imported.article.word_count,
            "sections": len(imported.article.sections),
        }
    if as_json:
        print_json(data)
    else:
        out.print(
            f"[bold]{esc(data['title'])}[/] → slug [cyan]{esc(data['slug'])}[/] ({data['outcome']}, {data['words']} words)"
        )


@app.command("list")
def article_list(as_json: JsonOpt = False) -> None:
    """List stored articles."""
    from newsletter.campaigns import list_articles
    from newsletter.db import session_scope

    with session_scope(engine_for(current_settings())) as session:
        rows = [
            {"id": a.id, "slug": a.slug, "title": a.title, "published": a.published_on} for a in list_articles(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = DataTable("id", "slug", "title", "published", copy=("id", "slug"))
    for r in rows:
        table.add_row(str(r["id"]), str(r["slug"]), str(r["title"]), str(r["published"] or ""))
    out.print(table)
