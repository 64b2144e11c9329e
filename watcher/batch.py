"""Unchanged checks written together: one transaction per batch instead of two per check.

A check that found its watch unchanged hands an `UnchangedCheck` to `UnchangedBatch.add` and waits for
the batch's transaction. A batch is written when it holds `max_rows` checks, when its oldest check has
waited `max_seconds`, when the pipeline has no other check under way (`flush_soon`, so a cycle's last
checks do not wait for the timer), and at shutdown (`aclose`). Writes run one at a time in a thread of
their own; checks arriving meanwhile form the next batch.

A crash loses at most the checks of the batch not yet written: rows that say "fetched, unchanged", never a
snapshot, fact, event or alert (those are written by the check itself, in its own transaction).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from watcher.health import HEALTH, describe, is_database_unavailable
from watcher.store import Store
from watcher.store.bookkeeping import UnchangedCheck, write_unchanged

log = logging.getLogger(__name__)


class UnchangedBatch:
    def __init__(self, store: Store, *, max_rows: int = 500, max_seconds: float = 1.0) -> None:
        self.store = store
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._waiting: list[tuple[UnchangedCheck, asyncio.Future[str]]] = []
        self._oldest = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="watcher-batch")
        self._due = False  # write as soon as the current write (if any) is done
        self.batches = 0  # written so far (for tests and benchmarks)

    def __len__(self) -> int:
        return len(self._waiting)

    async def add(self, check: UnchangedCheck) -> str:
        """Queue one check. Once its batch is written: "stored"; "stale" when its watch's state moved
        meanwhile (nothing written); "done" when another check stored its due time first (scale-out)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[str] = loop.create_future()
        fut.add_done_callback(_retrieve)  # its waiter may be gone (cancelled at shutdown)
        if not self._waiting:
            self._oldest = time.monotonic()
        self._waiting.append((check, fut))
        if len(self._waiting) >= self.max_rows:
            self.flush_soon()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_seconds, self.flush_soon)
        # A cancelled waiter (shutdown) leaves its check in the batch: it is still written.
        return await asyncio.shield(fut)

    def flush_soon(self) -> None:
        """Write what is waiting now (or right after the write under way)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:
            return
        self._due = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_loop())

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due and self._waiting:
            self._due = False
            batch, self._waiting = self._waiting, []
            try:
                stale, done = await loop.run_in_executor(self._thread, self._write, [c for c, _ in batch])
            except Exception as e:  # the database is unreachable: the checks fail, nothing else is at stake
                if is_database_unavailable(e):
                    HEALTH.database_failed(e, f"writing {len(batch)} unchanged checks")
                    self.store.recover(e)
                else:
                    log.warning("could not write %d unchanged checks: %s", len(batch), describe(e))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.batches += 1
            HEALTH.database_ok()
            outcome = {**{id(c): "stale" for c in stale}, **{id(c): "done" for c in done}}
            for check, fut in batch:
                if not fut.done():
                    fut.set_result(outcome.get(id(check), "stored"))
            if self._waiting and not self._due:
                # Checks that arrived during the write wait for their own deadline (or the next trigger).
                if len(self._waiting) >= self.max_rows:
                    self._due = True
                elif self._timer is None:
                    delay = max(0.0, self._oldest + self.max_seconds - time.monotonic())
                    self._timer = loop.call_later(delay, self.flush_soon)

    def _write(self, checks: list[UnchangedCheck]) -> tuple[list[UnchangedCheck], list[UnchangedCheck]]:
        with self.store.session() as s:
            return write_unchanged(s, checks)

    def close(self) -> None:
        """Stop the writer thread (for a pipeline closed without `aclose`: nothing may be waiting)."""
        self._thread.shutdown(wait=True)

    async def aclose(self) -> None:
        """Write everything still waiting, then stop the writer thread."""
        self.flush_soon()
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
            self.flush_soon()
        self._thread.shutdown(wait=True)


def _retrieve(fut: asyncio.Future[str]) -> None:
    if not fut.cancelled():
        fut.exception()
