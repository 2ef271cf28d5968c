"""Staff mail, sent once: lead alerts, the daily lead digest, the director's weekly report.

Public face: ``send_staff_mail(engine, settings, *, key, kind, to, subject, html, text, images=None)``
→ ``True`` sent by this call / ``False`` already sent (or being sent, or ambiguous);
``StaffMailError`` (``retryable``) when this call's send failed; ``outbox_path(settings, key)``
(where the outbox transport writes a key); ``notification_status(engine, key)``;
``skip_staff_mail(engine, *, key, kind, to, reason)``: settle a key with nothing worth sending.

Uses ``db`` and ``config`` only, so any room above may send staff mail.
"""

from newsletter.notify.claims import skip as skip_staff_mail
from newsletter.notify.claims import status_of as notification_status
from newsletter.notify.mail import StaffMailError, outbox_path, send_staff_mail

__all__ = ["send_staff_mail", "StaffMailError", "outbox_path", "notification_status", "skip_staff_mail"]
