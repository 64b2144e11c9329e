"""HTTP header values from untrusted servers (watched sites, alert receivers), parsed without ever raising."""

from __future__ import annotations

import email.utils
import math
import time

# Longer than any backoff the watcher would use anyway (fetch.max_backoff, notify.backoff_max cap it again).
MAX_RETRY_AFTER = 7 * 86400.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delay-seconds or an HTTP date); None when it is not one.

    Only ASCII digits count as delay-seconds (Python's `str.isdigit` also accepts '²' and other digits that
    `float` refuses); a date in the past is 0; anything absurd is capped at a week.
    """
    if not value:
        return None
    value = value.strip()
    try:
        if value.isascii() and value.isdigit():
            seconds = float(value)
        else:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
    except Exception:  # any malformed date: the header is ignored, never fatal
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
