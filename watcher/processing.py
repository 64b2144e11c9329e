"""Normalise + extract off the fetching process: the CPU-heavy part of a check, in a pool of processes.

`normalise` and `extract` are pure functions of their inputs (DESIGN.md), so a worker process needs only
the fetched documents, the watch's scope and topic, and the content hashes the watch's latest snapshots
have; it returns the normalised documents with their facts. The checking process keeps fetching and
writing on its own core while the pool, one process per core, parses. With `workers = 0` the same
function runs in a thread of the checking process instead (small runs, debugging).

Deadline (`fetch.processing_budget`, counted from when a worker takes the job up): the worker stops between
documents once the budget is spent, and a timer interrupts it `GRACE` seconds later wherever it is (a
regular expression running away, a huge tree); either way the check fails as `timeout`. Should a worker
still not answer (stuck where nothing reaches it), the checking process stops waiting, replaces the pool
and records the timeout itself.

A worker that dies (killed, or a crash inside a parser) breaks the pool: it is started again and the jobs
it had are tried once more; a page whose processing kills its worker twice fails its check with the reason
`processing-crashed`.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from watcher.config import ScopeConfig
from watcher.errors import DocumentError
from watcher.records import Document, FactSet, RawDocument, Topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessJob:
    """The fetched documents of one check and what processing them depends on."""

    documents: tuple[RawDocument, ...]
    scope: ScopeConfig | None
    topic: Topic | None
    # entry_key -> content hash of the entry's latest snapshot: an entry whose normalised content hashes
    # the same is unchanged, and is not extracted.
    known: Mapping[str, str]
    # Reference date for documents that carry no date of their own, in metadata or a dateline (passed in:
    # the function stays pure).
    today: dt.date
    # Seconds the processing may take (fetch.processing_budget); 0 for no limit.
    budget: float = 0.0
    # The watch's `ignore` patterns: lines, rows and items dropped before hashing and extracting.
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Processed:
    document: Document
    content_hash: str
    facts: FactSet | None  # None: the content is the known one; nothing was extracted
    # The document as its snapshot stores it (`watcher.codec`), when there are facts to store: encoded
    # here, on a worker's core, rather than by the checking process that writes the snapshot.
    content_z: bytes | None = None


# How long past its budget a job may run before it is interrupted (or, stuck, abandoned).
GRACE = 5.0


class _Overrun(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise _Overrun


def process_documents(job: ProcessJob) -> list[Processed]:
    """Normalise each document and extract the facts of those whose content is new (pure, apart from the
    deadline: DocumentError 'timeout' past `job.budget`, 'too-deep' for a document nested beyond reach)."""
    from watcher.codec import encode_document
    from watcher.document import drop_ignored, normalise
    from watcher.extract import extract, forget_texts

    started = time.monotonic()
    alarm = job.budget > 0 and threading.current_thread() is threading.main_thread()
    if alarm:  # in a worker process (a thread cannot take signals): interrupt it wherever it is, late
        previous = signal.signal(signal.SIGALRM, _interrupt)
        signal.setitimer(signal.ITIMER_REAL, job.budget + GRACE)

    def checkpoint() -> None:
        if job.budget and time.monotonic() - started > job.budget:
            raise _Overrun

    try:
        out = []
        for raw in job.documents:
            checkpoint()
            doc = drop_ignored(normalise(raw, job.scope), list(job.ignore))
            content_hash = doc.content_hash()
            facts = content_z = None
            if job.known.get(doc.entry_key) != content_hash:
                checkpoint()
                facts = extract(doc, fallback_date=job.today, topic=job.topic)
                content_z = encode_document(doc)
            out.append(Processed(doc, content_hash, facts, content_z))
        return out
    except _Overrun:
        raise DocumentError("timeout", overrun_message(job.budget)) from None
    except RecursionError:
        raise DocumentError("too-deep", "the document is nested too deeply to read") from None
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        forget_texts()  # sentence caches help within a document, not across: they would only hold memory
        _after_job()


# A worker gives the heap pages its jobs freed back to the system every this many jobs: pages, trees and
# documents come and go, and glibc keeps what they freed (a few MB over a first pass of thousands of pages).
JOBS_PER_TRIM = 100
_jobs_done = 0


def _after_job() -> None:
    global _jobs_done
    _jobs_done += 1
    if _jobs_done % JOBS_PER_TRIM == 0 and multiprocessing.parent_process() is not None:  # a worker process
        from watcher.memory import release_memory

        release_memory()


def process_timed(job: ProcessJob) -> tuple[list[Processed], float]:
    """`process_documents` and the seconds it took where it ran (a long feed's batches share one budget,
    counted from when each batch is taken up, not while it waits for a worker)."""
    started = time.monotonic()
    return process_documents(job), time.monotonic() - started


def overrun_message(budget: float) -> str:
    return f"processing took longer than fetch.processing_budget ({budget:.3g}s)"


# Workers run below the checking process's priority: what they do (normalise, extract) is batch work, while
# the checking process is the serial path every check waits on (fetching, timers, the database writes of each
# result). When both want the cores, the checking process goes first and the workers use what it leaves; a
# cycle whose pages are mostly unchanged then ends sooner (benchmarks/README.md, eighth session: the
# 10%-changed cycle about 10% sooner). Nothing is starved: niceness 5 still gets a third of a contended core.
WORKER_NICENESS = 5


def _init_worker(parent: int) -> None:
    """Runs once in each worker process as it starts; `parent` is the checking process's pid."""
    # The checking process decides when workers stop: Ctrl-C at a terminal (sent to the whole process
    # group) or a service manager's SIGTERM must not kill them under it mid-page.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A checking process killed outright (SIGKILL, OOM) cannot stop its workers, and they would wait for
    # work forever: each leaves once its parent is gone (even if that happened while it was starting).
    from watcher.memory import limit_arenas, release_memory

    limit_arenas()
    if hasattr(os, "nice"):  # (not on Windows)
        os.nice(WORKER_NICENESS)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="watcher-parent-watch", daemon=True).start()
    _warm_up()
    release_memory()  # what importing and warming up freed goes back to the system (about 4 MB of 70)


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _warm_up() -> None:
    # Import the parsers and pay their one-off costs (lazy imports, compiled patterns) when the worker
    # starts, not in the middle of the first check it gets, against its budget. An article long enough
    # for trafilatura's main extraction: a very short one sends it to its justext fallback, whose
    # stoplists of every language take about 35 MB per process (paid only if a real page needs them).
    from watcher.document import normalise
    from watcher.extract import extract

    para = ("<p>Filming of the second season began in March and wrapped in the autumn, according to the studio. "
            "The cast returns with several new faces, and the story picks up a year after the first season.</p>")
    page = ("<html><head><title>Show Season 2 release date</title></head><body><article><h1>Show Season 2: "
            "release date</h1><p>Show Season 2 is expected to premiere in early 2027 on Netflix, with Dana Reyes "
            f"as Marta.</p>{para * 4}<table><tr><th>Actor</th><th>Character</th></tr><tr><td>Dana Reyes</td>"
            "<td>Marta</td></tr></table></article></body></html>")
    extract(normalise(RawDocument(url="http://warm-up.invalid/", format="html", body=page)),
            reference_date=dt.date(2026, 1, 1))


def default_workers(*, daemon: bool = False) -> int:
    """One worker per core for a one-shot cycle (`watcher check`: a burst of first checks, where processing is
    most of the CPU). The daemon (`daemon=True`) leaves a core to its checking process: one per core less one,
    at least one. Its life is mostly unchanged re-checks, which are not processed at all, and each worker
    costs about 70 MB (the parsers and the extraction lexicons); on 2 cores this halves the pool, which then
    keeps up with all but a start with thousands of new watches (benchmarks/README.md, daemon memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1) if daemon else cores


class Processor:
    """Runs `process_documents` in worker processes (`workers` of them; None: one per core, 0: a thread)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        self._queued = 0  # jobs submitted and not finished (touched by the event loop only)

    def _pool(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.workers == 0:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="watcher-processing")
                else:
                    # spawn, not fork: the checking process runs a reactor thread and database connections,
                    # which a forked child must not inherit.
                    self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                         initializer=_init_worker, initargs=(os.getpid(),))
            return self._executor

    def start(self) -> None:
        """Start the workers now (they import the parsers in the background) rather than at first use."""
        for _ in range(2):  # a pool found broken (its workers were killed) is replaced once
            pool = self._pool()
            if not isinstance(pool, ProcessPoolExecutor):
                return
            try:
                for _ in range(self.workers):
                    pool.submit(_warm_up)
                return
            except BrokenProcessPool:
                self._restart(pool)

    async def run(self, job: ProcessJob) -> list[Processed]:
        return (await self.run_timed(job))[0]

    async def run_timed(self, job: ProcessJob) -> tuple[list[Processed], float]:
        """The processed documents and the seconds the processing took in the worker."""
        import asyncio  # here, not at the top: a worker process (which imports this module) needs none of it

        # A worker's death breaks the whole pool and fails every job in it: each is tried once more on a new
        # pool, so only a page that kills its worker twice fails.
        for attempt in range(2):
            pool = self._pool()
            # The job starts once those ahead of it are done, each within its budget and grace.
            limit = None
            if job.budget and isinstance(pool, ProcessPoolExecutor):
                limit = (self._queued // self.workers + 1) * (job.budget + 2 * GRACE)
            self._queued += 1
            try:
                running = asyncio.wrap_future(pool.submit(process_timed, job))
                result: tuple[list[Processed], float] = await asyncio.wait_for(running, limit)
                return result
            except BrokenProcessPool as e:
                self._restart(pool)
                if attempt:
                    raise DocumentError("processing-crashed", "the process parsing this page died, twice; "
                                                              "the page may crash the parser") from e
            except TimeoutError:
                # A worker stuck where even its timer cannot reach it: replace the pool (the other jobs
                # in it are tried again) and give this one up.
                log.warning("a processing worker did not answer within its budget; starting the pool again")
                self._restart(pool, kill=True)
                raise DocumentError("timeout", overrun_message(job.budget)) from None
            finally:
                self._queued -= 1
        raise AssertionError("unreachable")

    def _restart(self, broken: Executor, *, kill: bool = False) -> None:
        with self._lock:
            if self._executor is broken:
                if not kill:
                    log.warning("a processing worker died; starting the pool again")
                self._executor = None
        if kill:
            for pid in self._pids_of(broken):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        broken.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        """Process ids of the workers (for memory measurements)."""
        return self._pids_of(self._executor)

    @staticmethod
    def _pids_of(pool: Executor | None) -> list[int]:
        processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
        return list(processes)

    def close(self) -> None:
        with self._lock:
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_shared: dict[int, Processor] = {}
_shared_lock = threading.Lock()


def shared_processor(workers: int | None = None, *, daemon: bool = False) -> Processor:
    """One pool per process and size (None: `default_workers(daemon=daemon)`), reused by every pipeline of the
    process (a test session, a CLI run that checks twice) so its workers start once; they stop at
    interpreter exit."""
    size = default_workers(daemon=daemon) if workers is None else workers
    with _shared_lock:
        proc = _shared.get(size)
        if proc is None:
            proc = _shared[size] = Processor(size)
        return proc
