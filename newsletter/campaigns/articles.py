"""Articles in the store: import a file once, re-import it to update, look it up by slug."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.content import Article, load_article
from newsletter.db import models
from newsletter.errors import NotFound


@dataclass(frozen=True)
class ImportedArticle:
    row: models.Article
    article: Article
    outcome: str  # created | updated | unchanged


@dataclass(frozen=True)
class ArticleRow:
    """A stored article as a list shows it: plain values, no session attached."""

    id: int
    slug: str
    title: str
    published_on: date | None


def list_articles(session: Session) -> list[ArticleRow]:
    """Every stored article, oldest first (by id): ``newsletter article list`` and, later, the
    staff console read this instead of querying the table themselves."""
    return [
        ArticleRow(a.id, a.slug, a.title, a.published_on)
        for a in session.scalars(select(models.Article).order_by(models.Article.id))
    ]


def _content_hash(article: Article) -> str:
    return hashlib.sha256(json.dumps(article.to_dict(), sort_keys=True).encode()).hexdigest()


def import_article(session: Session, path: Path) -> ImportedArticle:
    """Parse ``path`` and store it under its slug; importing the same file again is a no-op."""
    article = load_article(path)
    digest = _content_hash(article)
    row = session.scalar(select(models.Article).where(models.Article.slug == article.slug))
    if row is not None and row.content_hash == digest:
        return ImportedArticle(row, article, "unchanged")
    outcome = "updated" if row is not None else "created"
    if row is None:
        row = models.Article(slug=article.slug)
        session.add(row)
    row.title = article.title
    row.author = article.author
    row.published_on = article.published
    row.source_format = article.source_format
    row.source_path = str(path)
    row.content = article.to_dict()
    row.content_hash = digest
    session.flush()
    return ImportedArticle(row, article, outcome)


def get_article(session: Session, slug: str) -> models.Article:
    row = session.scalar(select(models.Article).where(models.Article.slug == slug))
    if row is None:
        known = session.scalars(select(models.Article.slug).order_by(models.Article.id)).all()
        hint = (
            f"; known articles: {', '.join(known)}" if known else "; import one with `newsletter article import PATH`"
        )
        raise NotFound(f"no article with slug {slug!r}{hint}", where="--article")
    return row
