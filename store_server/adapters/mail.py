"""Receipt delivery: a plain-text rendering, and two Mailer adapters (files for the demo, SMTP)."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from store_server.domain.receipt import Receipt

logger = logging.getLogger(__name__)

WIDTH = 48


def format_money(cents: int, currency: str) -> str:
    """Integer cents to ``12.34 EUR``; integer arithmetic only, so no float rounding can creep in."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{frac:02d} {currency}"


def _row(left: str, right: str) -> str:
    gap = max(1, WIDTH - len(left) - len(right))
    return f"{left}{' ' * gap}{right}"


def render_receipt_text(receipt: Receipt, store_name: str) -> str:
    bill = receipt.bill
    cur = bill.currency
    when = datetime.fromtimestamp(receipt.exited_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [
        store_name.center(WIDTH).rstrip(),
        f"Store {receipt.store_id}".center(WIDTH).rstrip(),
        "",
        when,
        "=" * WIDTH,
    ]
    for line in bill.lines:
        unit = format_money(line.unit_price_cents, cur)
        out.append(_row(f"{line.quantity} x {line.name} @ {unit}", format_money(line.amount_cents, cur)))
    if not bill.lines:
        out.append("(no items)")
    out.append("-" * WIDTH)
    out.append(_row("Subtotal", format_money(bill.subtotal_cents, cur)))
    for tax_class, cents in bill.tax_by_class:
        out.append(_row(f"Tax ({tax_class})", format_money(cents, cur)))
    out.append(_row("TOTAL", format_money(bill.total_cents, cur)))
    out.append("=" * WIDTH)
    if receipt.payment_status == "approved":
        out.append(f"Payment: approved ({receipt.charge_id})")
    else:
        reason = f": {receipt.decline_reason}" if receipt.decline_reason else ""
        out.append(f"Payment: {receipt.payment_status.upper()}{reason}")
        out.append("Our staff will contact you to settle this visit.")
    out.append(f"Receipt: {receipt.id}")
    out.append(f"Visit:   {receipt.session_id}")
    out.append("")
    return "\n".join(out)


class FileMailer:
    """Writes ``<receipt_id>.txt`` into a directory: the demo's mailbox, and an audit trail."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def send_receipt(self, receipt: Receipt, text: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{receipt.id}.txt"
        # Temp file + rename: a reader (or a crash) never sees half a receipt; a resend overwrites.
        fd, tmp = tempfile.mkstemp(prefix=f".{receipt.id}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(target)


class NoRecipient(LookupError):
    """The account has no e-mail address; the caller decides (log, or fall back to a file)."""


class SmtpMailer:
    """Sends receipts over SMTP.

    ``smtp://user:pass@host:port`` (plain), ``smtp://...?starttls=1`` (upgrade with STARTTLS) or
    ``smtps://...`` (TLS from the first byte).
    """

    def __init__(
        self,
        smtp_url: str,
        mail_from: str,
        recipient_lookup: Callable[[str], str | None],
        store_name: str = "Walkout",
        timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"smtp_url must start with smtp:// or smtps://, got {smtp_url!r}")
        self._ssl = parts.scheme == "smtps"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._ssl else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        flag = parse_qs(parts.query).get("starttls", ["0"])[0].lower()
        self._starttls = flag in ("1", "true", "yes")
        self._from = mail_from
        self._lookup = recipient_lookup
        self._store_name = store_name
        self._timeout = timeout_s

    def send_receipt(self, receipt: Receipt, text: str) -> str:
        to = self._lookup(receipt.account_token)
        if not to:
            raise NoRecipient(f"account {receipt.account_token!r} has no e-mail address")
        msg = EmailMessage()
        msg["From"] = self._from
        msg["To"] = to
        msg["Subject"] = f"Your {self._store_name} receipt {receipt.id}"
        # Stable Message-ID: a resend after a crash is recognisable as the same mail.
        msg["Message-ID"] = f"<{receipt.id}@{self._from.rpartition('@')[2] or 'walkout.local'}>"
        msg.set_content(text)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._ssl:
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with smtp:
            if self._starttls:
                smtp.starttls(context=context)
            if self._user:
                smtp.login(self._user, self._password or "")
            smtp.send_message(msg)
        logger.info("receipt %s mailed to %s", receipt.id, to)
        return to
