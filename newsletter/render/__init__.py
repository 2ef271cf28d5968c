"""Render: an Article becomes a campaign's HTML and text parts, once per campaign.

Jinja (templates/*.mjml.j2 and their *.txt.j2 twins) → MJML → ``mjml2html`` → HTML. Links in
the body, the call to action and "read more" are click-tracked through one registry shared by
both parts. Per-recipient values stay as PLACEHOLDERS for SendGrid or :func:`personalise`.

Public face::

    render_campaign(article, brand, *, subject, preheader, template=..., templates_dir=None)
        -> RenderedCampaign(subject, preheader, html, text, links, template)
    Brand, Link, RenderedCampaign, RenderError
    PLACEHOLDERS, recipient_values(first_name, token), personalise(content, values)
    inert_text(text): a subject or preheader made from content, its %% made inert
"""

from newsletter.render.campaign import render_campaign
from newsletter.render.errors import RenderError
from newsletter.render.model import Brand, Link, RenderedCampaign
from newsletter.render.personalise import PLACEHOLDERS, inert_text, personalise, recipient_values

__all__ = [
    "Brand",
    "Link",
    "RenderedCampaign",
    "RenderError",
    "render_campaign",
    "PLACEHOLDERS",
    "inert_text",
    "personalise",
    "recipient_values",
]
