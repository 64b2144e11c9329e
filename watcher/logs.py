"""Logging setup and redaction: secrets from the environment never reach a log line or an error."""

from __future__ import annotations

import logging
import os
import re

from watcher.text import strip_control, strip_userinfo

_SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|APIKEY|CREDENTIAL)", re.I)


_REMEMBERED: set[str] = set()


def remember_secret(value: str) -> None:
    """A secret read from the environment (by `secret_from_env`): redacted like the well-named ones."""
    if value and len(value) >= 4:
        _REMEMBERED.add(value)


def _secret_values() -> list[str]:
    values = list(_REMEMBERED)
    for name, value in os.environ.items():
        if _SECRET_NAMES.search(name) and value and len(value) >= 4:
            values.append(value)
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """Hide known secret values (env vars named *PASSWORD*, *SECRET*, *TOKEN*..., and every secret read through
    the config) and the credentials of any URL."""
    for value in _secret_values():
        text = text.replace(value, "***")
    return strip_userinfo(text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = strip_control(redact(msg))
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def setup_logging(verbose: int = 0) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # Scrapy and friends are chatty at INFO; keep them one step quieter than ours.
    for noisy in ("scrapy", "twisted", "apscheduler", "filelock", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO if verbose >= 2 else logging.WARNING))
    # A failed download (robots.txt included) is recorded in history with its reason; Scrapy's own
    # ERROR line with a full traceback for each one is noise in a daemon's log, unless debugging.
    for duplicate in ("scrapy.downloadermiddlewares.robotstxt", "scrapy.downloadermiddlewares.retry"):
        logging.getLogger(duplicate).setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
