"""Small text helpers shared by every output: scraped text is untrusted and may carry terminal escapes."""

from __future__ import annotations

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
