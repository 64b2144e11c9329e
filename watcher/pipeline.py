"""One check of one watch, end to end: fetch -> document -> extract -> store -> diff -> outbox.

`Pipeline.check(name)` is what the scheduler runs per watch and what `watcher check` runs for a cycle.

Where the work happens:
- Fetching is asynchronous (Scrapy on the shared loop).
- What a re-check compares against (validators, body hash, latest content hashes) is in memory
  (`self.states`, loaded once by `start()`), so deciding "unchanged" reads nothing from the database.
- Normalise + extract run in a pool of processes (`watcher.processing`), off this process's GIL.
- An unchanged check is bookkeeping only (a few watch columns, one more check counted on the watch's run
  of quiet checks: watcher/store/bookkeeping.py): it joins a batch that is written in one transaction
  with other checks (`watcher.batch`), at least every second.
- Everything else a check writes (snapshots, facts, events, alerts, a failure) is one transaction of its
  own, in a database thread: a crash leaves either all of it or none of it.
- Every check ends: the fetch within `fetch.fetch_deadline`, normalise + extract within
  `fetch.processing_budget` (watcher.processing enforces it in the worker), else it is recorded `timeout`.

Several processes may check the same watches (workers of a scaled-out deployment, a `watcher check` run
next to the daemon). The in-memory state is then only a guess: each write is applied only if the
watch's `state_rev` is still the one the check started from (see watcher/store/bookkeeping.py), and a
check whose guess was stale is made again from the database's state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from watcher.batch import UnchangedBatch
from watcher.changes import has_held_events, saved_held_events
from watcher.codec import encode_document
from watcher.config import Config, WatchConfig
from watcher.errors import ConfigError, DocumentError
from watcher.health import HEALTH, describe, is_database_unavailable
from watcher.logs import redact
from watcher.processing import GRACE, Processed, ProcessJob, Processor, overrun_message, shared_processor
from watcher.records import ENTRY_KEY_LENGTH, ChangeEvent, FetchOutcome, FetchRequest
from watcher.store import Store
from watcher.store.bookkeeping import (
    MAX_CACHED_ENTRIES,
    QUIET,
    UnchangedCheck,
    WatchState,
    close_run,
    latest_hashes,
    load_states,
    record_quiet,
)
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch, utcnow
from watcher.text import safe_key

log = logging.getLogger(__name__)

# A check whose state turned out stale is made again from the database's state, at most this many times.
STALE_RETRIES = 2
# A feed or listing longer than this is processed and stored this many entries at a time, each batch in a
# transaction of its own (a transaction of 50 new entries takes some tens of milliseconds).
ENTRY_BATCH = 50


# The claim of a watch row (Pipeline._claim), composed once: every check that stores something makes it.
_BUMP = update(Watch.__table__).where(Watch.__table__.c.name == bindparam("w_name")) \
    .values(state_rev=Watch.__table__.c.state_rev + 1)
_BUMP_IF_AT = _BUMP.where(Watch.__table__.c.state_rev == bindparam("w_rev"))
_LOCK_WATCH = select(Watch).where(Watch.name == bindparam("name")).with_for_update()
# The latest snapshot of an entry (the previous version of a changed one).
_LATEST_OF_ENTRY = select(Snapshot).where(Snapshot.watch_id == bindparam("watch_id"),
                                          Snapshot.entry_key == bindparam("entry_key")) \
    .order_by(Snapshot.id.desc()).limit(1)


class FetchStage(Protocol):
    async def fetch(self, req: FetchRequest) -> FetchOutcome: ...


@dataclass(slots=True)
class CheckResult:
    watch: str
    outcome: str  # baseline (first version stored) | changed | unchanged | not_modified | failed | skipped
    http_status: int | None = None
    reason: str | None = None
    error: str | None = None
    snapshots: int = 0
    events: int = 0
    alerts: int = 0
    duration_ms: int = 0
    # The events the check stored for alerting (type, subject, summary...), logged once they are committed.
    event_log: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)


# Outcomes that are the normal course of a re-check: logged at DEBUG, every other one at INFO.
QUIET_OUTCOMES = ("unchanged", "not_modified", "skipped")


def log_check(result: CheckResult) -> None:
    """One line per check that found something (baseline, changed, failed), then one per event it stored;
    the fields go into `--log-format json` objects as they are."""
    level = logging.DEBUG if result.outcome in QUIET_OUTCOMES else logging.INFO
    if log.isEnabledFor(level):
        detail = [f"HTTP {result.http_status}"] if result.http_status else []
        if result.snapshots or result.events:
            detail.append(f"{result.snapshots} snapshots, {result.events} events, {result.alerts} alerts")
        detail.append(f"{result.duration_ms} ms")
        why = f": {result.reason}" if result.reason else ""
        log.log(level, "check %s: %s%s (%s)", result.watch, result.outcome, why, ", ".join(detail), extra={
            "what": "check", "watch": result.watch, "outcome": result.outcome, "http_status": result.http_status,
            "reason": result.reason, "error": result.error, "snapshots": result.snapshots, "events": result.events,
            "alerts": result.alerts, "duration_ms": result.duration_ms})
    for e in result.event_log:
        log.info("event %s on %s: %s", e["event_type"], result.watch, e["summary"],
                 extra={"what": "event", "watch": result.watch, **e})


def _event_fields(row: ChangeEventRow) -> dict[str, Any]:
    return {"event_id": row.uid, "event_type": row.type, "subject": row.subject, "summary": row.summary,
            "topic": row.topic_key, "snapshot_id": row.snapshot_id}


@dataclass(slots=True)
class CycleReport:
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def failed(self) -> int:
        return self.count("failed")


@dataclass(slots=True)
class _Work:
    """A fetch outcome after processing: what the check found."""

    outcome: FetchOutcome
    changed: list[Processed] = field(default_factory=list)
    same_keys: list[str] = field(default_factory=list)
    # Whether the watch had no snapshot before this check (its baseline), when batches stored some already.
    first_of_watch: bool | None = None
    seconds: float = 0.0  # processing time, in the worker

    @property
    def unchanged(self) -> bool:
        return self.outcome.status in ("same_body", "not_modified", "ok") and not self.changed


class StaleState(Exception):
    """The watch's state moved (another process wrote it) since the check read it."""


class DueAlreadyStored(Exception):
    """Another check already stored this due time (or a later one) of the watch: this one stores nothing."""


def backoff_delay(failures: int, retry_after: float | None, max_backoff: float) -> float:
    """Seconds to wait before the next attempt: Retry-After when the server says, else 60s doubling."""
    base = 60.0 * 2 ** max(0, failures - 1)
    return min(max_backoff, max(retry_after or 0.0, base))


def _episode_uid(watch: str, kind: str, since: dt.datetime) -> str:
    return hashlib.sha256(f"{watch}|{kind}|{since.isoformat()}".encode()).hexdigest()


class Pipeline:
    def __init__(self, store: Store, config: Config, fetcher: FetchStage, *, workers: int = 2,
                 processor: Processor | None = None, batch_rows: int = 500, batch_seconds: float = 1.0,
                 shared: bool = False) -> None:
        self.store = store
        self.config = config
        self.fetcher = fetcher
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="watcher-db")
        self.processor = processor or shared_processor(config.watcher.process_workers)
        self.batch = UnchangedBatch(store, max_rows=batch_rows, max_seconds=batch_seconds)
        self.states: dict[str, WatchState] = {}
        # Other processes check these watches too (workers of a scaled-out deployment): the state in memory
        # is checked against the database's revision before each fetch, not trusted until a write fails.
        self.shared = shared
        self._running: set[str] = set()
        self._due: dict[str, int] = {}  # watch -> the due time its running check serves (scale-out workers)
        self._busy = 0  # checks under way that may still add to the batch
        # Backpressure: fetching outruns processing, and every fetched body waits in memory until it is
        # processed. At most this many checks sit between "fetch started" and "stored".
        self.capacity = max(4, 2 * config.fetch.concurrency)
        self._in_flight = asyncio.Semaphore(self.capacity)

    async def start(self, names: list[str] | None = None) -> None:
        """Load the re-check state of the named (default: all) watches, and start the processing pool."""
        self.processor.start()
        self.states.update(await self._in_thread(self._load_states, names))
        from watcher.runtime import freeze_heap

        freeze_heap()

    def forget(self, names: list[str]) -> None:
        """Drop the in-memory state of these watches (changed by a config reload): read again when next checked."""
        for name in names:
            self.states.pop(name, None)

    async def aclose(self) -> None:
        """Write the unchanged checks still waiting, then stop the database threads."""
        await self.batch.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Stop the database threads (a check that returned has its rows written: it waited for them)."""
        self.batch.close()
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _load_states(self, names: list[str] | None) -> dict[str, WatchState]:
        with self.store.session() as s:
            return load_states(s, names)

    # ------------------------------------------------------------------ async part

    async def check(self, name: str, *, honour_backoff: bool = True, due: int | None = None) -> CheckResult:
        """Fetch and process one watch. Never raises for a bad page, and always ends: the fetch within
        `fetch.fetch_deadline`, the processing within `fetch.processing_budget` (else `timeout`).
        A running watch is not started twice.

        `due` (scale-out workers): the due time this check serves, in ms since the epoch. A due time at or
        before the watch's last stored one is skipped unfetched, and the check's rows are committed only if
        no other check stored that due time first (compared in the same transaction), so a due time is
        stored at most once however many workers run it."""
        try:
            wc = self.config.watch_by_name(name)
        except ConfigError:  # removed by a config reload after its run was due
            return CheckResult(name, "skipped", reason="not-in-config")
        if name in self._running:
            return CheckResult(name, "skipped", reason="already-running")
        self._running.add(name)
        if due is not None:
            self._due[name] = due
        busy = _Busy(self)
        started = time.monotonic()
        try:
            result = await self._check(wc, honour_backoff, busy)
        except asyncio.CancelledError:
            raise
        except DueAlreadyStored:
            result = CheckResult(name, "skipped", reason="already-done")
        except Exception as e:
            self.states.pop(name, None)  # whatever it was, read the watch's state afresh next time
            if is_database_unavailable(e):
                # Not the watch's fault, and nowhere to record it: the health view and one log line per
                # outage say it; the watch is checked again at its next run.
                HEALTH.database_failed(e, f"check of {name}")
                self.store.recover(e)
                result = CheckResult(name, "failed", reason="database-unavailable", error=describe(e))
            elif isinstance(e, ConfigError):  # e.g. the variable named by auth.password_env is not set
                result = await self._record_crash(wc, e, "config-error", str(e))
            else:
                log.exception("check of %s crashed", name)  # a bug in one watch must not stop the others
                result = await self._record_crash(wc, e)
        finally:
            self._running.discard(name)
            self._due.pop(name, None)
            busy.done()
        result.duration_ms = int((time.monotonic() - started) * 1000)
        HEALTH.checked(name, result.outcome, result.reason)
        log_check(result)
        return result

    async def _check(self, wc: WatchConfig, honour_backoff: bool, busy: _Busy) -> CheckResult:
        state = await self._state(wc.name)
        due = self._due.get(wc.name)
        if due is not None and state.due_done is not None and state.due_done >= due:
            return CheckResult(wc.name, "skipped", reason="already-done")
        if honour_backoff and state.backoff_until and state.backoff_until > utcnow():
            return CheckResult(wc.name, "skipped", reason="backoff")
        outcome: FetchOutcome | None = None
        baseline: bool | None = None  # the watch's first check, as it was before batches of it were stored
        for attempt in range(STALE_RETRIES + 1):
            validate = attempt < STALE_RETRIES  # the last attempt writes whatever it found
            async with self._in_flight:
                if outcome is None:
                    outcome = await self._fetch(wc, state, conditional=attempt == 0)
                    if outcome.status == "ok" and len(outcome.documents) > ENTRY_BATCH:
                        work, state = await self._store_batches(wc, outcome, state)
                        outcome, baseline = work.outcome, work.first_of_watch
                    else:
                        work = await self._process(wc, outcome, state)
                else:
                    work = await self._process(wc, outcome, state)
                    work.first_of_watch = baseline
                batched = work.unchanged and state.batchable and validate
                if not batched:
                    try:
                        result, fresh = await self._in_thread(self._record, wc, work, state, validate)
                    except StaleState:
                        pass
                    else:
                        HEALTH.database_ok()
                        self.states[wc.name] = fresh
                        return result
            if batched:
                busy.done()  # nothing more from this check for the batch to wait for
                stored = await self.batch.add(self._unchanged_row(state, work, due))
                if stored == "stored":
                    self._remember_unchanged(state, work, due)
                    return CheckResult(wc.name, "not_modified" if outcome.status == "not_modified" else "unchanged",
                                       outcome.http_status)
                if stored == "done":
                    return CheckResult(wc.name, "skipped", reason="already-done")
                busy.again()
            # Another process wrote this watch since its state was read: decide again from the database's
            # state. A fetched body is judged again as it is; "same as before" and 304 carry no body and were
            # judged against the stale state, so only those are fetched again (without validators).
            state = await self._reload(wc.name)
            if outcome.status in ("same_body", "not_modified"):
                outcome = None
        raise AssertionError("unreachable: the last attempt does not validate")

    async def _state(self, name: str) -> WatchState:
        """The watch's state: from memory; read from the database when absent, or, when other processes
        check the same watches (`shared`), when its revision moved."""
        state = self.states.get(name)
        if state is None:
            return await self._reload(name)
        if self.shared:
            rev, due_done = await self._in_thread(self._current, state.watch_id)
            if rev != state.rev:
                return await self._reload(name)
            state.due_done = due_done  # unchanged checks store due times without moving the revision
        return state

    async def _reload(self, name: str) -> WatchState:
        state: WatchState = (await self._in_thread(self._load_states, [name]))[name]
        self.states[name] = state
        return state

    def _current(self, watch_id: int) -> tuple[int | None, int | None]:
        with self.store.session() as s:
            row = s.execute(select(Watch.state_rev, Watch.due_done).where(Watch.id == watch_id)).first()
            return (row.state_rev, row.due_done) if row else (None, None)

    async def _fetch(self, wc: WatchConfig, state: WatchState, *, conditional: bool) -> FetchOutcome:
        req = FetchRequest(watch=wc.name, url=wc.url, kind=wc.kind, etag=state.etag if conditional else None,
                           max_entries=self.config.max_entries(wc) if wc.kind in ("feed", "wordpress") else None,
                           last_modified=state.last_modified if conditional else None,
                           body_hash=state.body_hash if conditional and state.has_snapshot else None,
                           auth=wc.auth.credentials(wc.name) if wc.auth else None,
                           wait_for=wc.browser.wait_for if wc.browser else None,
                           browser_timeout=wc.browser.timeout.total_seconds() if wc.browser and wc.browser.timeout
                           else None)
        # The fetch stage resolves by itself within its deadline; this bound holds for any fetch stage.
        # (asyncio.timeout, not wait_for: no task per fetch.)
        deadline = self.config.fetch.fetch_deadline.total_seconds() + GRACE
        try:
            async with asyncio.timeout(deadline):
                return await self.fetcher.fetch(req)
        except TimeoutError:
            return FetchOutcome(watch=wc.name, url=wc.url, status="failed", reason="timeout",
                                error=f"the fetch did not end within {deadline:.0f}s")

    async def _store_batches(self, wc: WatchConfig, outcome: FetchOutcome, state: WatchState
                             ) -> tuple[_Work, WatchState]:
        """A long feed or listing, processed `ENTRY_BATCH` entries at a time within one processing budget: every
        batch but the last is stored in a transaction of its own (its snapshots, events and alerts), so the
        write lock is held briefly, other watches' writes go between, and a check stopped half-way keeps what
        it stored (the body hash is not stored, so the next check reads the feed again and goes on where this
        one stopped: stored entries are known). Returns the last batch's work, for the check's own transaction
        (or a `timeout` saying how far it got), and the watch's state after the batches."""
        docs = outcome.documents
        total, done = len(docs), 0
        # A first check stopped after some batches leaves snapshots but no check row: the next is a baseline too.
        first_of_watch = not state.has_snapshot or not await self._in_thread(self._checked_before, state.watch_id)
        budget = self.config.fetch.processing_budget.total_seconds()
        spent = 0.0  # processing time in the workers (a batch's wait for a free worker does not count)
        known = dict(state.hashes) if state.hashes is not None else await self._in_thread(
            self._latest_hashes, state.watch_id)
        while True:
            chunk, docs = docs[:ENTRY_BATCH], docs[ENTRY_BATCH:]
            left = max(0.001, budget - spent) if budget else 0.0
            part = dataclasses.replace(outcome, documents=chunk)
            work = await self._process(wc, part, state, known=known, budget=left)
            work.first_of_watch = first_of_watch
            spent += work.seconds
            if work.outcome.status == "failed":
                if work.outcome.reason == "timeout":
                    error = (f"{overrun_message(budget)}: {done} of {total} entries stored; the next check goes on "
                             "from there (a lower max_entries makes each check shorter)")
                    work.outcome = dataclasses.replace(work.outcome, error=error)
                return work, state
            if not docs:
                return work, state
            if work.changed or (state.pending and work.same_keys):
                for attempt in range(STALE_RETRIES + 1):
                    try:
                        state = await self._in_thread(self._record_batch, wc, work, state, attempt < STALE_RETRIES)
                        break
                    except StaleState:  # another process wrote the watch: judge this batch against its state
                        state = await self._reload(wc.name)
                        known = dict(state.hashes) if state.hashes is not None else await self._in_thread(
                            self._latest_hashes, state.watch_id)
                        left = max(0.001, budget - spent) if budget else 0.0
                        work = await self._process(wc, part, state, known=known, budget=left)
                        spent += work.seconds
                        work.first_of_watch = first_of_watch
                        if work.outcome.status == "failed":
                            return work, state
                known.update((p.document.entry_key, p.content_hash) for p in work.changed)
            done += len(chunk)

    async def _record_crash(self, wc: WatchConfig, e: Exception, reason: str = "internal-error",
                            error: str | None = None) -> CheckResult:
        """An unexpected exception: a failure like any other (it counts, backs off, raises fetch_failed)."""
        outcome = FetchOutcome(watch=wc.name, url=wc.url, status="failed", reason=reason,
                               error=redact(error or f"{e.__class__.__name__}: {e}")[:2000])
        try:
            result, _ = await self._in_thread(self._record, wc, _Work(outcome), None, False)
            return result
        except DueAlreadyStored:
            return CheckResult(wc.name, "skipped", reason="already-done")
        except Exception as e2:
            if is_database_unavailable(e2):
                HEALTH.database_failed(e2, f"recording the failure of {wc.name}")
            else:
                log.exception("could not record the failure of %s", wc.name)
            return CheckResult(wc.name, "failed", reason=reason, error=outcome.error)

    async def cycle(self, names: list[str] | None = None, *, honour_backoff: bool = False,
                    progress: Callable[[CheckResult], None] | None = None) -> CycleReport:
        """Check every (or the named) enabled watch once, concurrently; Scrapy enforces politeness."""
        wanted = names or [w.name for w in self.config.watch if w.enabled]
        for n in wanted:
            self.config.watch_by_name(n)  # unknown names fail before anything is fetched
        started = time.monotonic()

        async def one(n: str) -> CheckResult:
            r = await self.check(n, honour_backoff=honour_backoff)
            if progress:
                progress(r)
            return r

        results = await asyncio.gather(*(one(n) for n in wanted))
        return CycleReport(list(results), time.monotonic() - started)

    async def _process(self, wc: WatchConfig, outcome: FetchOutcome, state: WatchState, *,
                       known: dict[str, str] | None = None, budget: float | None = None) -> _Work:
        """Normalise and extract what was fetched (in the processing pool); unchanged entries are not extracted.
        `known`: the entries' latest content hashes when the caller has them; `budget`: seconds (default:
        fetch.processing_budget)."""
        if outcome.status != "ok":
            return _Work(outcome)
        if known is None:
            known = state.hashes
        if known is None:  # a long feed: its hashes are not kept in memory
            known = await self._in_thread(self._latest_hashes, state.watch_id)
        if budget is None:
            budget = self.config.fetch.processing_budget.total_seconds()
        try:
            processed, seconds = await self.processor.run_timed(ProcessJob(
                documents=outcome.documents, scope=wc.scope, topic=wc.topic.topic() if wc.topic else None,
                known=known, today=utcnow().date(), budget=budget, ignore=tuple(wc.ignore)))
        except DocumentError as e:
            return _Work(FetchOutcome(watch=outcome.watch, url=outcome.url, status="failed", reason=e.reason,
                                      error=str(e), http_status=outcome.http_status, size=outcome.size,
                                      duration_ms=outcome.duration_ms))
        return _Work(outcome, changed=[p for p in processed if p.facts is not None],
                     same_keys=[p.document.entry_key for p in processed if p.facts is None], seconds=seconds)

    def _checked_before(self, watch_id: int) -> bool:
        with self.store.session() as s:
            return s.scalar(select(Check.id).where(Check.watch_id == watch_id, Check.outcome.in_(
                ("baseline", "changed", "unchanged", "not_modified"))).limit(1)) is not None or bool(
                s.scalar(select(Watch.run_repeats).where(Watch.id == watch_id)))

    def _latest_hashes(self, watch_id: int) -> dict[str, str]:
        with self.store.session() as s:
            return latest_hashes(s, watch_id)

    @staticmethod
    def _unchanged_row(state: WatchState, work: _Work, due: int | None) -> UnchangedCheck:
        o = work.outcome
        return UnchangedCheck(
            watch_id=state.watch_id, rev=state.rev, at=utcnow(),
            outcome="not_modified" if o.status == "not_modified" else "unchanged", http_status=o.http_status,
            duration_ms=o.duration_ms, etag=o.etag, last_modified=o.last_modified,
            body_hash=state.body_hash if o.status == "not_modified" else o.body_hash, due=due)

    @staticmethod
    def _remember_unchanged(state: WatchState, work: _Work, due: int | None) -> None:
        o = work.outcome
        state.etag, state.last_modified = o.etag, o.last_modified
        if o.status != "not_modified":
            state.body_hash = o.body_hash
        state.consecutive_failures, state.backoff_until = 0, None
        if due is not None:
            state.due_done = due

    # ------------------------------------------------------------------ sync part (database thread)

    def _record(self, wc: WatchConfig, work: _Work, state: WatchState | None, validate: bool
                ) -> tuple[CheckResult, WatchState]:
        """Write one check in one transaction; return its result and the watch's state after it.

        With `validate`, the transaction applies only if the watch's revision is still `state.rev`
        (StaleState otherwise); `state` is then current, and the state after the write is derived from it
        and what was written, without reading it back."""
        with self.store.session() as s:
            w = self._claim(s, wc.name, state.rev if validate and state else None)
            new: frozenset[str] = frozenset()
            if work.outcome.status == "failed":
                result = self._record_failure(s, w, wc, work.outcome)
            else:
                first = work.first_of_watch
                if first is None and validate and state:
                    first = not state.has_snapshot
                if validate and state:
                    new = _new_entries(state.hashes, work.changed)
                # a validated state says whether the watch had held events before this transaction
                result = self._record_success(s, w, wc, work, first_of_watch=first, new_entries=new,
                                              held=state.pending if validate and state else True)
            if not validate or state is None:  # `state` may be stale: read what the database now holds
                s.flush()
                return result, load_states(s, [wc.name])[wc.name]
            hashes = state.hashes if work.outcome.status == "failed" else _hashes_after(state.hashes, work.changed)
            pending = _held_after(s, w.id, state.pending, wc.confirm > 1 or _revises(work.changed, new))
            return result, WatchState(w.id, w.state_rev, w.etag, w.last_modified, w.body_hash, hashes,
                                      w.backoff_until, w.consecutive_failures, bool(w.failure_reported), pending,
                                      w.due_done)

    def _record_batch(self, wc: WatchConfig, work: _Work, state: WatchState, validate: bool) -> WatchState:
        """One batch of a long feed in a transaction of its own: the snapshots and events of its changed entries,
        held events of its unchanged ones, their alerts; not the check row nor the validators (the check's
        own transaction writes those). Returns the watch's state after it."""
        from watcher.notify import enqueue_alerts

        with self.store.session() as s:
            w = self._claim(s, wc.name, state.rev if validate else None, claim_due=False)
            new = _new_entries(state.hashes, work.changed) if validate else frozenset()
            held = state.pending or not validate
            events, _ = self._store_snapshots(s, w, wc, work.changed, utcnow(), work.first_of_watch, new, held=held)
            if state.pending:
                events += self._confirm_unchanged(s, w, wc, work.same_keys)
            if events:
                enqueue_alerts(s, events)
            pending = _held_after(s, w.id, held, wc.confirm > 1 or _revises(work.changed, new))
            return dataclasses.replace(state, rev=w.state_rev, hashes=_hashes_after(state.hashes, work.changed),
                                       pending=pending)

    def _claim(self, s: Session, name: str, expected_rev: int | None, *, claim_due: bool = True) -> Watch:
        """Lock the watch row for this transaction and bump its state revision; raise StaleState when the
        revision is no longer `expected_rev`, DueAlreadyStored when the due time this check serves (or a
        later one) is stored. The UPDATE comes first: it takes the lock on both backends."""
        bump = _BUMP if expected_rev is None else _BUMP_IF_AT
        if s.connection().execute(bump, {"w_name": name, "w_rev": expected_rev}).rowcount == 0:
            raise StaleState(name)
        w = s.scalars(_LOCK_WATCH, {"name": name}).one()
        due = self._due.get(name)
        if due is not None:  # the claim of the due time this check serves (scale-out workers)
            if w.due_done is not None and w.due_done >= due:
                raise DueAlreadyStored(name, due)  # the whole transaction rolls back
            if claim_due:  # (a batch of a long feed leaves the claim to the check's own transaction)
                w.due_done = due
        return w

    def _record_failure(self, s: Session, w: Watch, wc: WatchConfig, outcome: FetchOutcome) -> CheckResult:
        from watcher.changes import save_events
        from watcher.notify import enqueue_alerts

        now = utcnow()
        error = redact(outcome.error or outcome.reason or "failed")[:2000]
        result = CheckResult(wc.name, "failed", outcome.http_status, outcome.reason, error)
        if w.consecutive_failures == 0 or w.last_status != "failed":
            w.config = {**w.config, "_failing_since": now.isoformat()}
        w.consecutive_failures += 1
        w.last_check_at, w.last_status, w.last_error = now, "failed", f"{outcome.reason}: {error}"
        delay = backoff_delay(w.consecutive_failures, outcome.retry_after,
                              self.config.fetch.max_backoff.total_seconds())
        w.backoff_until = now + dt.timedelta(seconds=delay)
        close_run(s, w)
        s.add(Check(watch_id=w.id, at=now, outcome="failed", http_status=outcome.http_status,
                    duration_ms=outcome.duration_ms, reason=(outcome.reason or "")[:64], error=error,
                    due=self._due.get(wc.name)))
        if w.consecutive_failures >= self.config.fetch.failures_before_event and not w.failure_reported:
            since = dt.datetime.fromisoformat(w.config.get("_failing_since", now.isoformat()))
            event = ChangeEvent(
                type="fetch_failed", subject=outcome.reason or "", new={"reason": outcome.reason, "error": error,
                                                                     "failures": w.consecutive_failures},
                summary=f"{wc.name}: {w.consecutive_failures} failed checks in a row ({outcome.reason})",
                evidence=error, confidence=1.0, topic=_topic_key(wc), watch=wc.name, source_url=wc.url,
                detected_at=now, uid=_episode_uid(wc.name, "fetch_failed", since))
            rows = save_events(s, [event], watch_id=w.id, snapshot_id=None, topic_key=_topic_key(wc))
            w.failure_reported = True
            result.events = len(rows)
            result.alerts = enqueue_alerts(s, rows)
            result.event_log = [_event_fields(r) for r in rows]
        return result

    def _record_success(self, s: Session, w: Watch, wc: WatchConfig, work: _Work, *,
                        first_of_watch: bool | None = None, new_entries: frozenset[str] = frozenset(),
                        held: bool = True) -> CheckResult:
        from watcher.changes import save_events
        from watcher.notify import enqueue_alerts

        outcome = work.outcome
        now = utcnow()
        changed = [p for p in work.changed if p.facts is not None]
        status = "not_modified" if outcome.status == "not_modified" else "changed" if changed else "unchanged"
        if changed:
            # A watch's first stored version is its baseline, not a change (nothing was there to change).
            first = first_of_watch if first_of_watch is not None else s.scalar(
                select(Snapshot.id).where(Snapshot.watch_id == w.id).limit(1)) is None
            status = "baseline" if first else status
        result = CheckResult(wc.name, status, outcome.http_status)
        events: list[ChangeEventRow] = []
        if w.failure_reported:
            since = dt.datetime.fromisoformat(w.config.get("_failing_since", now.isoformat()))
            events += save_events(s, [ChangeEvent(
                type="fetch_recovered", old={"failures": w.consecutive_failures, "error": w.last_error},
                summary=f"{wc.name}: fetching works again after {w.consecutive_failures} failures",
                topic=_topic_key(wc), watch=wc.name, source_url=wc.url, detected_at=now,
                uid=_episode_uid(wc.name, "fetch_recovered", since))],
                watch_id=w.id, snapshot_id=None, topic_key=_topic_key(wc))
        w.consecutive_failures, w.failure_reported, w.backoff_until = 0, False, None
        w.last_check_at, w.last_status, w.last_error = now, status, None
        w.etag, w.last_modified = outcome.etag, outcome.last_modified
        if status != "not_modified":
            w.body_hash = outcome.body_hash
        stored, last_snapshot_id = self._store_snapshots(s, w, wc, changed, now, first_of_watch, new_entries,
                                                         held=held)
        events += stored
        unchanged_keys = work.same_keys
        if outcome.status in ("same_body", "not_modified"):
            unchanged_keys = list(self._latest_keys(s, w.id))
        events += self._confirm_unchanged(s, w, wc, unchanged_keys)
        if status in QUIET:  # nothing stored: one more check of the watch's run of quiet ones (or a new run)
            record_quiet(s, w, UnchangedCheck(w.id, w.state_rev, now, status, outcome.http_status,
                                              outcome.duration_ms, None, None, None, due=self._due.get(wc.name)))
        else:
            close_run(s, w)
            s.execute(insert(Check), [{"watch_id": w.id, "at": now, "outcome": status,
                                       "http_status": outcome.http_status, "duration_ms": outcome.duration_ms,
                                       "snapshot_id": last_snapshot_id, "due": self._due.get(wc.name)}])
        result.snapshots = len(changed)
        result.events = len(events)
        result.alerts = enqueue_alerts(s, events) if events else 0
        result.event_log = [_event_fields(r) for r in events]
        return result

    def _store_snapshots(self, s: Session, w: Watch, wc: WatchConfig, changed: list[Processed], now: dt.datetime,
                         first_of_watch: bool | None, new_entries: frozenset[str] = frozenset(), *,
                         held: bool = True) -> tuple[list[ChangeEventRow], int | None]:
        """A snapshot of each changed entry and its events; returns the events to alert and the last snapshot's id.
        `new_entries`: entries known to have no snapshot yet (`_new_entries`), whose previous one is not looked up;
        `held`: False when the watch is known to have no held events (none are looked for)."""
        from watcher.changes import record_snapshot, snapshot_facts
        from watcher.store.topics import adopt_orphans, assign_topic

        events: list[ChangeEventRow] = []
        last_snapshot_id = None
        # In topic order: consensus locks each topic it touches (PostgreSQL), always in the same order.
        for p in sorted(changed, key=lambda p: _topic_of(p.facts)):
            doc, facts = p.document, p.facts
            assert facts is not None
            previous = None if doc.entry_key in new_entries else s.scalars(
                _LATEST_OF_ENTRY, {"watch_id": w.id, "entry_key": doc.entry_key}).first()
            topic = facts.topic()
            if wc.topic is None:  # one work stays one topic across versions and sources (store/topics.py)
                topic = assign_topic(s, w.id, topic, previous)
                adopt_orphans(s, w.id, topic)
            snap = Snapshot(
                watch_id=w.id, entry_key=doc.entry_key, fetched_at=now, content_hash=p.content_hash,
                url=doc.url, title=doc.title, published=doc.published or facts.document.published,
                modified=doc.modified,
                topic_key=topic.key if topic else None, work=facts.work,
                season=topic.season if topic else facts.season,
                content_z=p.content_z or encode_document(doc), facts=snapshot_facts(facts))
            s.add(snap)
            s.flush()
            last_snapshot_id = snap.id
            events += record_snapshot(s, watch=w, snapshot=snap, previous=previous, confirm=wc.confirm,
                                      watch_config=wc, stale_after=self.config.topics.stale_after,
                                      first_of_watch=first_of_watch, flap_window=self.config.flap_window(wc),
                                      held=held)
        return events, last_snapshot_id

    @staticmethod
    def _confirm_unchanged(s: Session, w: Watch, wc: WatchConfig, keys: list[str]) -> list[ChangeEventRow]:
        """Entries seen unchanged: their held events (confirm, flap damping) that have now been seen enough."""
        from watcher.changes import record_unchanged

        events: list[ChangeEventRow] = []
        for key in keys:
            latest = s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id, Snapshot.entry_key == key)
                               .order_by(Snapshot.id.desc()).limit(1)).first()
            if latest is not None:
                events += record_unchanged(s, watch=w, snapshot=latest, confirm=wc.confirm)
        return events

    @staticmethod
    def _latest_keys(s: Session, watch_id: int) -> set[str]:
        return set(s.scalars(select(Snapshot.entry_key).where(Snapshot.watch_id == watch_id).distinct()))


class _Busy:
    """Counts a check as under way until it has nothing more to add to the batch; when none is under
    way, the batch is written at once instead of waiting for its timer."""

    __slots__ = ("active", "pipeline")

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.active = True
        pipeline._busy += 1

    def done(self) -> None:
        if self.active:
            self.active = False
            self.pipeline._busy -= 1
            if self.pipeline._busy == 0:
                self.pipeline.batch.flush_soon()

    def again(self) -> None:
        if not self.active:
            self.active = True
            self.pipeline._busy += 1


def _hashes_after(before: dict[str, str] | None, stored: list[Processed]) -> dict[str, str] | None:
    """The latest content hash per entry once `stored` snapshots are written (None: not kept in memory)."""
    if before is None:
        return None
    after = {**before, **{p.document.entry_key: p.content_hash for p in stored}}
    return after if len(after) <= MAX_CACHED_ENTRIES else None


def _new_entries(hashes: dict[str, str] | None, changed: list[Processed]) -> frozenset[str]:
    """The entries of `changed` that have no snapshot yet, by `hashes` (the latest content hash of each of the
    watch's entries, as of this transaction: a validated state's; None when not known, then none is known new).
    Their first version has no previous one to read, diff or settle against (a watch's baseline: all of them)."""
    if hashes is None:
        return frozenset()
    keys = Counter(p.document.entry_key for p in changed)
    # A key is compared as given and as stored (a long key is stored shortened, watcher.text.safe_key); one
    # that comes twice in a check has a previous version the second time.
    return frozenset(k for k, n in keys.items()
                     if n == 1 and k not in hashes and safe_key(k, ENTRY_KEY_LENGTH) not in hashes)


def _held_after(s: Session, watch_id: int, held_before: bool, may_hold: bool) -> bool:
    """Whether the watch has held events after this transaction. `held_before`: it may have had some before
    (else only what this transaction stored can be held, which the session knows); `may_hold`: this
    transaction may have held events back (confirmation, or a snapshot that revises an earlier one)."""
    if held_before:
        return has_held_events(s, watch_id)
    return may_hold and saved_held_events(s)


def _revises(changed: list[Processed], new_entries: frozenset[str]) -> bool:
    """Whether a snapshot of `changed` follows an earlier version of its entry (only such a snapshot can
    hold events back: confirmation and flap damping compare with a previous version)."""
    return any(p.document.entry_key not in new_entries for p in changed)


def _topic_of(facts: Any) -> str:
    topic = facts.topic() if facts is not None else None
    return topic.key if topic else ""


def _topic_key(wc: WatchConfig) -> str | None:
    return wc.topic.topic().key if wc.topic else None


async def run_cycle(store: Store, config: Config, names: list[str] | None = None, *,
                    progress: Callable[[CheckResult], None] | None = None, **fetch_settings: Any) -> CycleReport:
    """One check cycle with a fetcher of its own (for `watcher check`, tests and benchmarks)."""
    from spiders.fetch import Fetcher

    fetcher = Fetcher(config.fetch, **fetch_settings)
    pipeline = Pipeline(store, config, fetcher)
    try:
        await fetcher.start()
        await pipeline.start(names or [w.name for w in config.watch if w.enabled])
        return await pipeline.cycle(names, progress=progress)
    finally:
        await fetcher.close()
        await pipeline.aclose()
