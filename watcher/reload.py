"""Reloading the config of a running process: on SIGHUP, and when the file changes (`watcher.reload_on_change`).

The new file is read and validated whole before anything changes. An invalid file is refused with its error
in the log, and the config in force stays in force until a valid one arrives. A valid one is applied by the
process's own `apply` (the daemon re-syncs watches, subscribers and scheduler jobs): added, removed, paused
and changed watches take effect without a restart. Sections that configure long-lived machinery — the
database (`[watcher]`), the crawler (`[fetch]`), the sender (`[notify]`) and `[redis]` — keep their old values
until the next restart, and the log says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from watcher.config import Config, check_secrets, load_config
from watcher.errors import ConfigError

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
RESTART_SECTIONS = ("watcher", "fetch", "notify", "redis")


@dataclass
class ConfigChange:
    """What a reload changes. `config` is what to apply: the new watches and subscribers, with the
    restart-only sections kept as they were."""

    config: Config
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.config.watch)} watches"]
        for what, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                parts.append(f"{what} {shown}")
        if len(parts) == 1:
            parts.append("no watch changed")
        return "; ".join(parts)


def compare(old: Config, new: Config) -> ConfigChange:
    before = {w.name: w for w in old.watch}
    after = {w.name: w for w in new.watch}
    restart = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    applied = new.model_copy(update={s: getattr(old, s) for s in restart})
    return ConfigChange(
        config=applied,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
        restart_needed=restart,
    )


def _fingerprint(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


async def _wait(stop: asyncio.Event, hup: asyncio.Event | None, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(hup.wait())] if hup else [])
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def follow_config(config: Config, apply: Callable[[ConfigChange], Awaitable[None]], stop: asyncio.Event,
                        hup: asyncio.Event | None = None, *, poll: float = POLL_SECONDS) -> None:
    """Until `stop`: reload when `hup` is set or (with `reload_on_change`) when the file changes, and hand
    every valid change to `apply`. Never raises: a failed reload is logged and the old config stays."""
    path = config.source_path
    if path is None:  # built in code (tests), not read from a file: nothing to follow
        await stop.wait()
        return
    current = config
    seen = _fingerprint(path)
    loaded = _digest(path)
    while not stop.is_set():
        await _wait(stop, hup, poll)
        if stop.is_set():
            return
        signalled = hup is not None and hup.is_set()
        if hup is not None:
            hup.clear()
        now = _fingerprint(path)
        if not signalled and (now == seen or not current.watcher.reload_on_change):
            continue
        # A file being written in place changes for a moment more; read it once it has settled.
        await asyncio.sleep(min(0.3, poll))
        settled = _fingerprint(path)
        if not signalled and settled != now:
            continue
        seen = settled
        digest = _digest(path)
        if digest == loaded and not signalled:
            continue  # touched, not changed
        why = "SIGHUP" if signalled else "file changed"
        try:
            new = await asyncio.to_thread(load_config, path)
            check_secrets(new)  # a subscriber whose secret is missing would fail every alert
        except ConfigError as e:
            log.error("config reload (%s) refused; the config in force stays until the file is fixed: %s", why, e)
            loaded = digest
            continue
        loaded = digest
        change = compare(current, new)
        try:
            await apply(change)
        except Exception:
            log.exception("config reload (%s) could not be applied; the config in force stays", why)
            continue
        current = change.config
        log.warning("config reloaded (%s): %s", why, change.summary())
        if change.restart_needed:
            log.warning("config: [%s] changed; those settings take effect at the next restart",
                        "], [".join(change.restart_needed))
