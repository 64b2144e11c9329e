"""Logging setup and redaction: secrets from the environment never reach a log line or an error."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from typing import Any

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


# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON object.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: time (UTC, ISO 8601), level, logger, message, the fields a
    caller passed with `extra=` (watch, outcome, event_type, ...) and the exception, if any. Strings are
    redacted like the text lines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "message": strip_control(redact(record.getMessage()))}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = _clean(value)
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))  # JSON escapes its newlines
        return json.dumps(out, ensure_ascii=False, default=str)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return strip_control(redact(value))
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def setup_logging(verbose: int = 0, fmt: str = "text", *, daemon: bool = False) -> None:
    """Logging for a command. `daemon` (run, worker, sender): watcher's own INFO lines (one per check that
    found something, per event, per alert sent or dead) are shown at the default verbosity; other commands
    print their results themselves and log only warnings. `fmt` "json": one JSON object per line."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    handler = next((h for h in root.handlers if any(isinstance(f, RedactingFilter) for f in h.filters)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.setLevel(level)
    logging.getLogger("watcher").setLevel(logging.INFO if daemon and verbose == 0 else logging.NOTSET)
    # Scrapy and friends are chatty at INFO; keep them one step quieter than ours.
    for noisy in ("scrapy", "twisted", "apscheduler", "filelock", "trafilatura", "htmldate"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO if verbose >= 2 else logging.WARNING))
    # A failed download (robots.txt included) is recorded in history with its reason; Scrapy's own
    # ERROR line with a full traceback for each one is noise in a daemon's log, unless debugging.
    for duplicate in ("scrapy.downloadermiddlewares.robotstxt", "scrapy.downloadermiddlewares.retry"):
        logging.getLogger(duplicate).setLevel(logging.DEBUG if verbose >= 2 else logging.CRITICAL)
