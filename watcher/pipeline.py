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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from watcher.config import Config, WatchConfig
from watcher.errors import ConfigError, DocumentError
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
        # Backpressure: fetching outruns extraction, and every fetched body waits in memory until it is
        # processed. At most this many checks sit between "fetch started" and "stored".
        self._in_flight = asyncio.Semaphore(max(4, 2 * config.fetch.concurrency))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ------------------------------------------------------------------ async part

    async def check(self, name: str, *, honour_backoff: bool = True) -> CheckResult:
        """Fetch and process one watch. Never raises for a bad page; a running watch is not started twice."""
        try:
            wc = self.config.watch_by_name(name)
        except ConfigError:  # removed by a config reload after its run was due
            return CheckResult(name, "skipped", reason="not-in-config")
        if name in self._running:
            return CheckResult(name, "skipped", reason="already-running")
        self._running.add(name)
        started = time.monotonic()
        try:
            state: _WatchState = await self._in_thread(self._load_state, name)
            if honour_backoff and state.backoff_until and state.backoff_until > utcnow():
                return CheckResult(name, "skipped", reason="backoff")
            async with self._in_flight:
                outcome = await self.fetcher.fetch(FetchRequest(
                    watch=name, url=wc.url, kind=wc.kind, etag=state.etag, last_modified=state.last_modified,
                    body_hash=state.raw_hash if state.hashes else None))
                result: CheckResult = await self._in_thread(self.process, wc, outcome, state.hashes,
                                                            state.raw_hash)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug in one watch must not stop the others
            log.exception("check of %s crashed", name)
            result = CheckResult(name, "failed", reason="internal-error", error=redact(f"{e.__class__.__name__}: {e}"))
            try:
                await self._in_thread(self._record_internal_error, wc, result)
            except Exception:
                log.exception("could not record the failure of %s", name)
        finally:
            self._running.discard(name)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result

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
                               w.config.get("_raw_hash"))

    def _normalise(self, wc: WatchConfig, outcome: FetchOutcome) -> list[Document]:
        from watcher.document import normalise

        return [normalise(raw, wc.scope) for raw in outcome.documents]

    def process(self, wc: WatchConfig, outcome: FetchOutcome, hashes: dict[str, str],
                raw_hash: str | None = None) -> CheckResult:
        """Turn a fetch outcome into stored rows. CPU work happens before the transaction opens."""
        body_hash = outcome.body_hash
        if outcome.status == "same_body":
            # Byte-identical to the last fetch (the fetcher compared hashes and did not even parse it).
            return self._record_success(wc, outcome, [], unchanged_keys=list(hashes), raw_hash=body_hash)
        if outcome.status == "ok":
            try:
                docs = self._normalise(wc, outcome)
            except DocumentError as e:
                outcome = FetchOutcome(watch=outcome.watch, url=outcome.url, status="failed", reason=e.reason,
                                       error=str(e), http_status=outcome.http_status, size=outcome.size)
                docs = []
        else:
            docs = []
        if outcome.status == "failed":
            return self._record_failure(wc, outcome)
        fresh = [d for d in docs if hashes.get(d.entry_key) != d.content_hash()]
        same = [d.entry_key for d in docs if hashes.get(d.entry_key) == d.content_hash()]
        return self._record_success(wc, outcome, [(d, self._extract(wc, d)) for d in fresh], unchanged_keys=same,
                                    raw_hash=body_hash)

    def _extract(self, wc: WatchConfig, doc: Document) -> Any:
        from watcher.extract import extract

        ref = doc.published or doc.modified or utcnow().date()
        return extract(doc, reference_date=ref, topic=wc.topic.topic() if wc.topic else None)

    def _watch_row(self, s: Session, name: str) -> Watch:
        return s.scalars(select(Watch).where(Watch.name == name).with_for_update()).one()

    def _record_failure(self, wc: WatchConfig, outcome: FetchOutcome) -> CheckResult:
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
                        duration_ms=outcome.duration_ms, reason=(outcome.reason or "")[:64], error=error))
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
        return result

    def _record_internal_error(self, wc: WatchConfig, result: CheckResult) -> None:
        with self.store.session() as s:
            w = self._watch_row(s, wc.name)
            w.last_check_at, w.last_status, w.last_error = utcnow(), "failed", result.error
            s.add(Check(watch_id=w.id, outcome="failed", reason="internal-error", error=result.error))

    def _record_success(self, wc: WatchConfig, outcome: FetchOutcome, changed: list[tuple[Document, Any]],
                        unchanged_keys: list[str], raw_hash: str | None = None) -> CheckResult:
        from watcher.changes import record_snapshot, record_unchanged, save_events
        from watcher.notify import enqueue_alerts

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
            for doc, facts in changed:
                previous = s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id,
                                                            Snapshot.entry_key == doc.entry_key)
                                     .order_by(Snapshot.id.desc()).limit(1)).first()
                topic = facts.topic()
                snap = Snapshot(
                    watch_id=w.id, entry_key=doc.entry_key, fetched_at=now, content_hash=doc.content_hash(),
                    url=doc.url, title=doc.title, published=doc.published, modified=doc.modified,
                    topic_key=topic.key if topic else None, work=facts.work, season=facts.season,
                    content_z=encode_document(doc), facts=facts.to_json_dict())
                s.add(snap)
                s.flush()
                last_snapshot_id = snap.id
                events += record_snapshot(s, watch=w, snapshot=snap, previous=previous, confirm=wc.confirm)
            if status == "not_modified":
                unchanged_keys = list(self._latest_keys(s, w.id))
            for key in unchanged_keys:
                latest = s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id, Snapshot.entry_key == key)
                                   .order_by(Snapshot.id.desc()).limit(1)).first()
                if latest is not None:
                    events += record_unchanged(s, watch=w, snapshot=latest, confirm=wc.confirm)
            s.add(Check(watch_id=w.id, at=now, outcome=status, http_status=outcome.http_status,
                        duration_ms=outcome.duration_ms, snapshot_id=last_snapshot_id))
            result.snapshots = len(changed)
            result.events = len(events)
            result.alerts = enqueue_alerts(s, events) if events else 0
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
