"""Logging set-up that keeps Slack tokens and email addresses out of the logs."""

from __future__ import annotations

import logging
import re

SECRET = re.compile(r"xox[abposre]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|Bearer\s+[^\s\"']+")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def redact(text: str) -> str:
    """Replace tokens and email addresses with placeholders."""
    return EMAIL.sub("[email]", SECRET.sub("[secret]", text))


class RedactingFormatter(logging.Formatter):
    """Formats a record, then redacts secrets and emails from the whole line (tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str) -> None:
    """Log to stderr at `level`, redacted; quiet the chattiest libraries."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic.runtime.plugins", "apscheduler", "slack_sdk.socket_mode", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
