"""One check of one watch, end to end: fetch -> document -> extract -> store -> diff -> outbox.

`Pipeline.check(name)` is what the scheduler runs per watch and what `watcher check` runs for a cycle.
Fetching is asynchronous (Scrapy on the shared loop); the CPU and database part runs in a worker thread
so the loop keeps fetching. Everything a check writes (check row, snapshots, facts, events, alerts) is
one database transaction: a crash leaves either all of it or none of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from watcher.config import Config, WatchConfig
from watcher.errors import ConfigError, DocumentError
from watcher.health import HEALTH, describe, is_database_unavailable
from watcher.logs import redact
from watcher.records import ChangeEvent, Document, FetchOutcome, FetchRequest
from watcher.store import Store
from watcher.store.codec import encode_document
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch, utcnow

log = logging.getLogger(__name__)


class FetchStage(Protocol):
    async def fetch(self, req: FetchRequest, *, priority: int = 0) -> FetchOutcome: ...


@dataclass(slots=True)
class CheckResult:
    watch: str
    outcome: str  # changed | unchanged | not_modified | failed | skipped
    http_status: int | None = None
    reason: str | None = None
    error: str | None = None
    snapshots: int = 0
    events: int = 0
    alerts: int = 0
    duration_ms: int = 0


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
class _WatchState:
    etag: str | None
    last_modified: str | None
    backoff_until: dt.datetime | None
    hashes: dict[str, str]
    raw_hash: str | None = None
    due_done: int | None = None


class DueAlreadyStored(Exception):
    """Another check already stored this due time (or a later one) of the watch: this one stores nothing."""


class CheckAbandoned(Exception):
    """A check's processing stopped at a safe point: its deadline passed, or the daemon gave up on it."""


class Budget:
    """The processing deadline of one check, shared by the event loop and the worker thread.

    The clock starts when a worker thread takes the check up (not while it waits for one). The thread calls
    `checkpoint()` between steps and `commit()` just before its final transaction commits; the loop calls
    `abandon()` when the thread overruns, which succeeds unless the final commit is already under way.
    That lock makes "recorded as timeout by the loop" and "stored by the thread" exclusive.
    """

    GRACE = 5.0  # how long past the budget the loop waits for the thread to notice by itself

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.abandoned = False
        self.committing = False
        self._lock = threading.Lock()

    def begin(self) -> None:
        self.started = time.monotonic()

    def overrun(self) -> bool:
        return self.started is not None and time.monotonic() - self.started > self.seconds

    def checkpoint(self) -> None:
        if self.abandoned or self.overrun():
            raise CheckAbandoned

    def commit(self) -> None:
        with self._lock:
            if self.abandoned:
                raise CheckAbandoned
            self.committing = True

    def abandon(self) -> bool:
        with self._lock:
            if self.committing:
                return False
            self.abandoned = True
            return True

    def give_up_at(self) -> float | None:
        return None if self.started is None else self.started + self.seconds + self.GRACE


def backoff_delay(failures: int, retry_after: float | None, max_backoff: float) -> float:
    """Seconds to wait before the next attempt: Retry-After when the server says, else 60s doubling."""
    base = 60.0 * 2 ** max(0, failures - 1)
    return min(max_backoff, max(retry_after or 0.0, base))


def _episode_uid(watch: str, kind: str, since: dt.datetime) -> str:
    return hashlib.sha256(f"{watch}|{kind}|{since.isoformat()}".encode()).hexdigest()


class Pipeline:
    def __init__(self, store: Store, config: Config, fetcher: FetchStage, *, workers: int = 2) -> None:
        self.store = store
        self.config = config
        self.fetcher = fetcher
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="watcher-process")
        self._running: set[str] = set()
        self._due: dict[str, int] = {}  # watch -> the due time its running check serves (scale-out workers)
        # Backpressure: fetching outruns extraction, and every fetched body waits in memory until it is
        # processed. At most this many checks sit between "fetch started" and "stored".
        self._in_flight = asyncio.Semaphore(max(4, 2 * config.fetch.concurrency))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ------------------------------------------------------------------ async part

    async def check(self, name: str, *, honour_backoff: bool = True, due: int | None = None) -> CheckResult:
        """Fetch and process one watch. Never raises for a bad page, and always ends: the fetch within
        `fetch.fetch_deadline`, the processing within `fetch.processing_budget` (else `timeout`).
        A running watch is not started twice.

        `due` (scale-out workers): the due time this check serves, in ms since the epoch. A due time at or
        before the watch's last stored one is skipped unfetched, and the check's rows are committed only if
        no other check stored that due time first (compared in the same transaction, `_watch_row`), so a
        due time is stored at most once however many workers run it."""
        try:
            wc = self.config.watch_by_name(name)
        except ConfigError:  # removed by a config reload after its run was due
            return CheckResult(name, "skipped", reason="not-in-config")
        if name in self._running:
            return CheckResult(name, "skipped", reason="already-running")
        self._running.add(name)
        if due is not None:
            self._due[name] = due
        started = time.monotonic()
        try:
            result = await self._check(wc, honour_backoff)
        finally:
            self._running.discard(name)
            self._due.pop(name, None)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        HEALTH.checked(name, result.outcome, result.reason)
        return result

    async def _check(self, wc: WatchConfig, honour_backoff: bool) -> CheckResult:
        name = wc.name
        try:
            state: _WatchState = await self._in_thread(self._load_state, name)
            HEALTH.database_ok()
            due = self._due.get(name)
            if due is not None and state.due_done is not None and state.due_done >= due:
                return CheckResult(name, "skipped", reason="already-done")
            if honour_backoff and state.backoff_until and state.backoff_until > utcnow():
                return CheckResult(name, "skipped", reason="backoff")
            async with self._in_flight:
                outcome = await self._fetch(wc, state)
                return await self._process(wc, outcome, state)
        except asyncio.CancelledError:
            raise
        except DueAlreadyStored:
            return CheckResult(name, "skipped", reason="already-done")
        except Exception as e:
            if is_database_unavailable(e):
                # Not the watch's fault, and nowhere to record it: the health view and one log line per
                # outage say it; the watch is checked again at its next run.
                HEALTH.database_failed(e, f"check of {name}")
                self.store.recover(e)
                return CheckResult(name, "failed", reason="database-unavailable", error=describe(e))
            if isinstance(e, ConfigError):  # e.g. the variable named by auth.password_env is not set
                return await self._record_crash(wc, e, "config-error", str(e))
            log.exception("check of %s crashed", name)  # a bug in one watch must not stop the others
            return await self._record_crash(wc, e)

    async def _fetch(self, wc: WatchConfig, state: _WatchState) -> FetchOutcome:
        req = FetchRequest(watch=wc.name, url=wc.url, kind=wc.kind, etag=state.etag,
                           last_modified=state.last_modified, body_hash=state.raw_hash if state.hashes else None,
                           auth=wc.auth.credentials(wc.name) if wc.auth else None)
        # The fetch stage resolves by itself within its deadline; this bound holds for any fetch stage.
        deadline = self.config.fetch.fetch_deadline.total_seconds() + Budget.GRACE
        try:
            return await asyncio.wait_for(self.fetcher.fetch(req), deadline)
        except TimeoutError:
            return FetchOutcome(watch=wc.name, url=wc.url, status="failed", reason="timeout",
                                error=f"the fetch did not end within {deadline:.0f}s")

    async def _process(self, wc: WatchConfig, outcome: FetchOutcome, state: _WatchState) -> CheckResult:
        budget = Budget(self.config.fetch.processing_budget.total_seconds())
        fut = asyncio.get_running_loop().run_in_executor(self.executor, self.process, wc, outcome, state.hashes,
                                                         state.raw_hash, budget)
        try:
            while True:
                give_up_at = budget.give_up_at()
                # Waiting for a worker thread does not count against the budget: look again later.
                wait = budget.seconds + Budget.GRACE if give_up_at is None else give_up_at - time.monotonic()
                done, _ = await asyncio.wait({fut}, timeout=max(0.0, wait))
                if done:
                    return fut.result()
                if give_up_at is not None and time.monotonic() >= give_up_at:
                    break
        except asyncio.CancelledError:
            budget.abandon()
            raise
        if not budget.abandon():  # the thread is committing its result: take it
            return await fut
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # its CheckAbandoned is expected
        # The thread is stuck in one step (it stops at its next checkpoint and writes nothing more);
        # record the timeout from another thread, since this pipeline's workers may all be busy.
        log.warning("%s: processing overran fetch.processing_budget (%.0fs); recorded as timeout", wc.name,
                    budget.seconds)
        return await asyncio.to_thread(self._record_failure, wc, self._overrun(wc, outcome, budget))

    @staticmethod
    def _overrun(wc: WatchConfig, outcome: FetchOutcome, budget: Budget, stored: str = "") -> FetchOutcome:
        return FetchOutcome(watch=wc.name, url=wc.url, status="failed", reason="timeout",
                            http_status=outcome.http_status, size=outcome.size, duration_ms=outcome.duration_ms,
                            error=f"processing took longer than fetch.processing_budget ({budget.seconds:.0f}s)"
                                  f"{stored}")

    async def _record_crash(self, wc: WatchConfig, e: Exception, reason: str = "internal-error",
                            error: str | None = None) -> CheckResult:
        """An unexpected exception: a failure like any other (it counts, backs off, raises fetch_failed)."""
        outcome = FetchOutcome(watch=wc.name, url=wc.url, status="failed", reason=reason,
                               error=redact(error or f"{e.__class__.__name__}: {e}")[:2000])
        try:
            return await asyncio.to_thread(self._record_failure, wc, outcome)
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

    # ------------------------------------------------------------------ sync part (worker thread)

    def _load_state(self, name: str) -> _WatchState:
        with self.store.session() as s:
            w = s.scalars(select(Watch).where(Watch.name == name)).one()
            latest = (select(Snapshot.entry_key, func.max(Snapshot.id).label("id"))
                      .where(Snapshot.watch_id == w.id).group_by(Snapshot.entry_key).subquery())
            rows = s.execute(select(Snapshot.entry_key, Snapshot.content_hash)
                             .join(latest, Snapshot.id == latest.c.id)).all()
            return _WatchState(w.etag, w.last_modified, w.backoff_until, {k: h for k, h in rows},
                               w.config.get("_raw_hash"), w.due_done)

    def _normalise(self, wc: WatchConfig, outcome: FetchOutcome, budget: Budget) -> list[Document]:
        from watcher.document import drop_ignored, normalise

        docs = []
        for raw in outcome.documents:
            budget.checkpoint()
            docs.append(drop_ignored(normalise(raw, wc.scope), wc.ignore))
        return docs

    def process(self, wc: WatchConfig, outcome: FetchOutcome, hashes: dict[str, str],
                raw_hash: str | None = None, budget: Budget | None = None) -> CheckResult:
        """Turn a fetch outcome into stored rows. CPU work happens before the transaction opens."""
        budget = budget or Budget(self.config.fetch.processing_budget.total_seconds())
        budget.begin()
        try:
            return self._process_outcome(wc, outcome, hashes, raw_hash, budget)
        except CheckAbandoned:
            if budget.abandoned:
                raise  # the loop gave up on this check and recorded it
            return self._record_failure(wc, self._overrun(wc, outcome, budget), budget)

    def _process_outcome(self, wc: WatchConfig, outcome: FetchOutcome, hashes: dict[str, str],
                         raw_hash: str | None, budget: Budget) -> CheckResult:
        body_hash = outcome.body_hash
        if outcome.status == "same_body":
            # Byte-identical to the last fetch (the fetcher compared hashes and did not even parse it).
            return self._record_success(wc, outcome, [], unchanged_keys=list(hashes), raw_hash=body_hash,
                                        budget=budget)
        docs: list[Document] = []
        if outcome.status == "ok":
            try:
                docs = self._normalise(wc, outcome, budget)
            except (DocumentError, RecursionError) as e:
                reason = e.reason if isinstance(e, DocumentError) else "too-deep"
                error = str(e) if isinstance(e, DocumentError) else "the document is nested too deeply to read"
                outcome = FetchOutcome(watch=outcome.watch, url=outcome.url, status="failed", reason=reason,
                                       error=error, http_status=outcome.http_status, size=outcome.size)
        if outcome.status == "failed":
            return self._record_failure(wc, outcome, budget)
        fresh = [d for d in docs if hashes.get(d.entry_key) != d.content_hash()]
        same = [d.entry_key for d in docs if hashes.get(d.entry_key) == d.content_hash()]
        changed = []
        for d in fresh:
            budget.checkpoint()
            changed.append((d, self._extract(wc, d)))
        budget.checkpoint()
        return self._record_success(wc, outcome, changed, unchanged_keys=same, raw_hash=body_hash, budget=budget)

    def _extract(self, wc: WatchConfig, doc: Document) -> Any:
        from watcher.extract import extract

        ref = doc.published or doc.modified or utcnow().date()
        return extract(doc, reference_date=ref, topic=wc.topic.topic() if wc.topic else None)

    def _watch_row(self, s: Session, name: str) -> Watch:
        """The watch's row, locked for this transaction; for a check that serves a due time, also the claim
        of that due time: refused (the whole transaction rolls back) if it or a later one is stored."""
        w = s.scalars(select(Watch).where(Watch.name == name).with_for_update()).one()
        due = self._due.get(name)
        if due is not None:
            if w.due_done is not None and w.due_done >= due:
                raise DueAlreadyStored(name, due)
            w.due_done = due
        return w

    def _record_failure(self, wc: WatchConfig, outcome: FetchOutcome, budget: Budget | None = None) -> CheckResult:
        from watcher.changes import save_events
        from watcher.notify import enqueue_alerts

        now = utcnow()
        error = redact(outcome.error or outcome.reason or "failed")[:2000]
        result = CheckResult(wc.name, "failed", outcome.http_status, outcome.reason, error)
        with self.store.session() as s:
            w = self._watch_row(s, wc.name)
            if w.consecutive_failures == 0 or w.last_status != "failed":
                w.config = {**w.config, "_failing_since": now.isoformat()}
            w.consecutive_failures += 1
            w.last_check_at, w.last_status, w.last_error = now, "failed", f"{outcome.reason}: {error}"
            delay = backoff_delay(w.consecutive_failures, outcome.retry_after,
                                  self.config.fetch.max_backoff.total_seconds())
            w.backoff_until = now + dt.timedelta(seconds=delay)
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
            if budget is not None:
                budget.commit()
        return result

    def _record_success(self, wc: WatchConfig, outcome: FetchOutcome, changed: list[tuple[Document, Any]],
                        unchanged_keys: list[str], raw_hash: str | None = None, budget: Budget | None = None
                        ) -> CheckResult:
        from watcher.changes import record_snapshot, record_unchanged, save_events
        from watcher.notify import enqueue_alerts
        from watcher.store.topics import adopt_orphans, assign_topic

        now = utcnow()
        status = "not_modified" if outcome.status == "not_modified" else "changed" if changed else "unchanged"
        result = CheckResult(wc.name, status, outcome.http_status)
        with self.store.session() as s:
            w = self._watch_row(s, wc.name)
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
            if status != "not_modified" and raw_hash != w.config.get("_raw_hash"):
                w.config = {**w.config, "_raw_hash": raw_hash}
            last_snapshot_id = None
            # In topic order: consensus locks each topic it touches (PostgreSQL), always in the same order.
            for doc, facts in sorted(changed, key=lambda c: c[1].topic().key if c[1].topic() else ""):
                previous = s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id,
                                                            Snapshot.entry_key == doc.entry_key)
                                     .order_by(Snapshot.id.desc()).limit(1)).first()
                topic = facts.topic()
                if wc.topic is None:  # one work stays one topic across versions and sources (store/topics.py)
                    topic = assign_topic(s, w.id, topic, previous)
                    adopt_orphans(s, w.id, topic)
                snap = Snapshot(
                    watch_id=w.id, entry_key=doc.entry_key, fetched_at=now, content_hash=doc.content_hash(),
                    url=doc.url, title=doc.title, published=doc.published, modified=doc.modified,
                    topic_key=topic.key if topic else None, work=facts.work,
                    season=topic.season if topic else facts.season,
                    content_z=encode_document(doc), facts=facts.to_json_dict())
                s.add(snap)
                s.flush()
                last_snapshot_id = snap.id
                events += record_snapshot(s, watch=w, snapshot=snap, previous=previous, confirm=wc.confirm,
                                          watch_config=wc, stale_after=self.config.topics.stale_after)
            if status == "not_modified":
                unchanged_keys = list(self._latest_keys(s, w.id))
            for key in unchanged_keys:
                latest = s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id, Snapshot.entry_key == key)
                                   .order_by(Snapshot.id.desc()).limit(1)).first()
                if latest is not None:
                    events += record_unchanged(s, watch=w, snapshot=latest, confirm=wc.confirm)
            s.add(Check(watch_id=w.id, at=now, outcome=status, http_status=outcome.http_status,
                        duration_ms=outcome.duration_ms, snapshot_id=last_snapshot_id, due=self._due.get(wc.name)))
            result.snapshots = len(changed)
            result.events = len(events)
            result.alerts = enqueue_alerts(s, events) if events else 0
            if budget is not None:
                budget.commit()
        return result

    @staticmethod
    def _latest_keys(s: Session, watch_id: int) -> set[str]:
        return set(s.scalars(select(Snapshot.entry_key).where(Snapshot.watch_id == watch_id).distinct()))


def _topic_key(wc: WatchConfig) -> str | None:
    return wc.topic.topic().key if wc.topic else None


async def run_cycle(store: Store, config: Config, names: list[str] | None = None, *,
                    progress: Callable[[CheckResult], None] | None = None, **fetch_settings: Any) -> CycleReport:
    """One check cycle with a fetcher of its own (for `watcher check`, tests and benchmarks)."""
    from spiders.fetch import Fetcher

    fetcher = Fetcher(config.fetch, **fetch_settings)
    await fetcher.start()
    pipeline = Pipeline(store, config, fetcher)
    try:
        return await pipeline.cycle(names, progress=progress)
    finally:
        await fetcher.close()
        await asyncio.get_running_loop().run_in_executor(None, pipeline.close)
