"""Small text helpers shared by every output: scraped text is untrusted and may carry terminal escapes."""

from __future__ import annotations

import hashlib
import re

# ANSI/VT escape sequences (CSI, OSC, single-char escapes) and other C0/C1 controls but \t and \n.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """Remove ANSI escape sequences and control characters before text reaches a terminal or log."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def shorten(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# Userinfo: everything between "scheme://" and the last "@" of the authority (before any / ? # or space).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def strip_userinfo(text: str) -> str:
    """Every URL in `text` without its `user:password@` (for log lines and errors that mention URLs)."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text


def display_url(url: str | None) -> str:
    """A URL as every output shows it (CLI, logs, web page, Atom, iCalendar, alerts): without any
    `user:password@` and without control characters. Config URLs never carry credentials (they are refused
    at load), but scraped links and redirect targets may."""
    if not url:
        return ""
    return strip_userinfo(strip_control(str(url)))


# Characters no stored string keeps: C0 controls but tab, newline and carriage return; DEL and C1 controls;
# lone surrogates (from JSON "\ud800" escapes), which no driver can encode.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _unstorable(m: re.Match[str]) -> str:
    return "\ufffd" if m.group() >= "\ud800" else ""


def clean_text(text: str) -> str:
    """A string from the network made storable: control characters removed, lone surrogates replaced."""
    return text if _UNSTORABLE.search(text) is None else _UNSTORABLE.sub(_unstorable, text)


def safe_key(key: str, length: int) -> str:
    """A key (feed entry id, topic key) made storable in `length` characters: cleaned, and when too long its
    start kept readable with a hash of the whole appended, so distinct long keys stay distinct."""
    key = clean_text(key)
    if len(key) <= length:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: length - len(digest) - 1]}~{digest}"
