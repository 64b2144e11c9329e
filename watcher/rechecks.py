"""Checks asked for by hand (the web page's "recheck" button, the API), carried out by the running daemon.

`watcher web` may be another process, even on another machine, than `watcher run`; what they share is the
database. A request is a row in `check_requests`; the daemon polls for pending ones every few seconds,
claims each with a conditional update (so two daemons never both take it), checks the watch at once —
backoff after failures does not apply to a check someone asked for — and records the outcome on the row,
where the web page and the API read it. In a scaled-out deployment the active scheduler claims requests and
puts them on the workers' queue.

A request that no daemon picks up within `EXPIRE_AFTER` (none running) expires instead of firing hours later;
so does one whose daemon died while checking it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from watcher.store import Store
from watcher.store.models import CheckRequest, utcnow

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0
EXPIRE_AFTER = dt.timedelta(hours=1)
OPEN_STATES = ("pending", "running")


def request_json(r: CheckRequest) -> dict[str, Any]:
    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {"id": r.id, "watch": r.watch, "state": r.state, "requested_by": r.requested_by,
            "requested_at": iso(r.requested_at), "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
            "outcome": r.outcome, "error": r.error}


def latest_request(s: Session, watch: str) -> dict[str, Any] | None:
    row = s.scalars(select(CheckRequest).where(CheckRequest.watch == watch)
                    .order_by(CheckRequest.id.desc()).limit(1)).first()
    return request_json(row) if row else None


def request_check(store: Store, watch: str, *, by: str) -> tuple[dict[str, Any], bool]:
    """Ask the daemon to check `watch` now. A request already waiting or running for it is returned instead
    of adding another (asking twice does not check twice). Returns (request, created)."""
    with store.session() as s:
        open_row = s.scalars(select(CheckRequest).where(CheckRequest.watch == watch,
                                                        CheckRequest.state.in_(OPEN_STATES),
                                                        CheckRequest.requested_at > utcnow() - EXPIRE_AFTER)
                             .order_by(CheckRequest.id.desc()).limit(1)).first()
        if open_row is not None:
            return request_json(open_row), False
        row = CheckRequest(watch=watch, requested_by=by[:32], state="pending", requested_at=utcnow())
        s.add(row)
        s.flush()
        return request_json(row), True


def claim_requests(store: Store, *, limit: int = 50) -> list[tuple[int, str]]:
    """Pending requests now owned by the caller, oldest first; stale ones are expired on the way."""
    now = utcnow()
    with store.session() as s:
        # Never picked up (no daemon running), or picked up by a daemon that died mid-check.
        s.execute(update(CheckRequest).where(CheckRequest.state.in_(OPEN_STATES),
                                             CheckRequest.requested_at < now - EXPIRE_AFTER)
                  .values(state="expired", finished_at=now))
        pending = s.execute(select(CheckRequest.id, CheckRequest.watch).where(CheckRequest.state == "pending")
                            .order_by(CheckRequest.id).limit(limit)).all()
    claimed = []
    for request_id, watch in pending:
        with store.session() as s:
            done = s.execute(update(CheckRequest).where(CheckRequest.id == request_id,
                                                        CheckRequest.state == "pending")
                             .values(state="running", started_at=utcnow()))
            if done.rowcount == 1:
                claimed.append((request_id, watch))
    return claimed


def finish_request(store: Store, request_id: int, outcome: str, error: str | None = None) -> None:
    with store.session() as s:
        s.execute(update(CheckRequest).where(CheckRequest.id == request_id)
                  .values(state="done", outcome=outcome[:16], error=(error or None) and error[:2000],
                          finished_at=utcnow()))


async def serve_requests(store: Store, run: Callable[[str], Awaitable[Any]], stop: asyncio.Event, *,
                         poll: float = POLL_SECONDS) -> None:
    """Until `stop`: claim pending requests and `run(watch)` each (a CheckResult, or None when the watch was
    handed on to a queue), recording the outcome. Database trouble is logged and retried at the next poll."""
    tasks: set[asyncio.Task[Any]] = set()

    async def one(request_id: int, watch: str) -> None:
        try:
            result = await run(watch)
        except asyncio.CancelledError:
            await asyncio.to_thread(finish_request, store, request_id, "cancelled", "the daemon stopped")
            raise
        except Exception as e:  # the request must not stay 'running' for ever
            log.exception("requested check of %s failed", watch)
            await asyncio.to_thread(finish_request, store, request_id, "failed", f"{e.__class__.__name__}: {e}")
            return
        if result is None:
            outcome, error = "queued", None
        else:
            outcome, error = result.outcome, result.error or result.reason
        log.info("%s: requested check %s", watch, outcome)
        await asyncio.to_thread(finish_request, store, request_id, outcome, error)

    while not stop.is_set():
        try:
            claimed = await asyncio.to_thread(claim_requests, store)
        except Exception as e:
            from watcher.health import HEALTH, is_database_unavailable

            if is_database_unavailable(e):  # logged once per outage (watcher.health), not at every poll
                HEALTH.database_failed(e, "reading check requests")
                store.recover(e)
            else:
                log.warning("could not read check requests (%s); trying again", e.__class__.__name__)
            claimed = []
        for request_id, watch in claimed:
            task = asyncio.ensure_future(one(request_id, watch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll)
        except TimeoutError:
            pass
