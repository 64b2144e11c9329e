"""The persistent outbox: alert rows written with their event, delivered at least once, never after `sent`.

Lifecycle of an alert row: `pending` (due at `next_attempt_at`) -> claimed by a sender for `notify.lease`
(`claimed_by`, `claimed_until`; still `pending`) -> `sent`, or back to `pending` with a backoff, or `dead`
after `notify.max_attempts` or a permanent refusal. A sender that dies mid-send leaves its claim to expire,
and the alert is sent again with the same id: receivers deduplicate on that id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from watcher.config import Config, NotifyConfig, SubscriberConfig
from watcher.errors import NotifyError, WatcherError
from watcher.logs import redact
from watcher.notify.render import Delivery, digest_id
from watcher.notify.targets import notifier_for
from watcher.records import Alert, ChangeEvent
from watcher.store import AlertRow, ChangeEventRow, Store, Subscriber, Watch
from watcher.store.models import utcnow
from watcher.topic import resolve_topic_key, topic_label

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class UnknownAlert(WatcherError):
    exit_code = 2


def alert_uid(event_uid: str, subscriber: str) -> str:
    """Stable per (event, subscriber): the idempotency key receivers see as `event_id`."""
    return hashlib.sha256(f"{event_uid}|{subscriber}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- enqueue


def subscriber_config(row: Subscriber) -> SubscriberConfig:
    return SubscriberConfig.model_validate(row.config)


def matches(sub: SubscriberConfig, event: ChangeEventRow, topic_keys: list[str] | None = None) -> bool:
    """Whether `event` passes the subscriber's filters. `topic_keys` are `sub.topics` resolved already
    (callers matching many events pass them once)."""
    if sub.events and event.type not in sub.events:
        return False
    if event.confidence < sub.min_confidence:
        return False
    if sub.topics:
        key = event.topic_key or ""
        wanted = topic_keys if topic_keys is not None else [resolve_topic_key(t) for t in sub.topics]
        # A topic without a season ('All of Us Are Dead') follows every season of the work.
        return any(key == w or key.startswith(w + "#") for w in wanted)
    return True


def next_digest_time(sub: SubscriberConfig, now: dt.datetime) -> dt.datetime:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(sub.digest.cron, timezone=ZoneInfo(sub.digest.timezone))
    fire = trigger.get_next_fire_time(None, now.astimezone(ZoneInfo(sub.digest.timezone)))
    return (fire or now).astimezone(dt.UTC)


def enqueue_alerts(s: Session, events: Iterable[ChangeEventRow], *, now: dt.datetime | None = None) -> int:
    """Write one alert per (confirmed event, matching enabled subscriber), in the caller's transaction.

    Idempotent: an alert that exists already (same event uid and subscriber) is not written again.
    Returns the number of alerts written.
    """
    confirmed = [e for e in events if e.state == "confirmed"]
    if not confirmed:
        return 0
    subscribers = [(row, cfg, [resolve_topic_key(t) for t in cfg.topics])
                   for row in s.scalars(select(Subscriber).where(Subscriber.enabled.is_(True)))
                   for cfg in [subscriber_config(row)]]
    if not subscribers:
        return 0
    if any(e.id is None for e in confirmed):
        s.flush()
    now = now or utcnow()
    wanted = {alert_uid(e.uid, row.name): (e, row, cfg)
              for e in confirmed for row, cfg, keys in subscribers if matches(cfg, e, keys)}
    if not wanted:
        return 0
    existing = set(s.scalars(select(AlertRow.uid).where(AlertRow.uid.in_(list(wanted)))))
    written = 0
    for uid, (event, row, cfg) in wanted.items():
        if uid in existing:
            continue
        digest = cfg.mode == "digest"
        s.add(AlertRow(uid=uid, event_id=event.id, subscriber_id=row.id, status="pending", attempts=0,
                       next_attempt_at=next_digest_time(cfg, now) if digest else now, digest=digest,
                       created_at=now))
        written += 1
    return written


# --------------------------------------------------------------------------- deliver


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.dead


def backoff_delay(attempts: int, notify: NotifyConfig, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (half to full delay), and at least what the target asked for in
    Retry-After (even beyond `backoff_max`, up to a day: the target knows its own outage best)."""
    cap = notify.backoff_max.total_seconds()
    delay = min(cap, notify.backoff_base.total_seconds() * 2 ** max(0, attempts - 1))
    delay *= random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 86400.0))
    return delay


def _event_record(row: ChangeEventRow, watch: str | None) -> ChangeEvent:
    return ChangeEvent(type=row.type, subject=row.subject, old=row.old, new=row.new, summary=row.summary,
                       evidence=row.evidence or "", confidence=row.confidence, topic=row.topic_key,
                       watch=watch, source_url=row.source_url,
                       detected_at=row.detected_at, uid=row.uid)


@dataclass
class _Claimed:
    delivery: Delivery
    row_ids: list[int]


def _claim_next(store: Store, notify: NotifyConfig, now: dt.datetime, worker: str,
                skip: set[int]) -> _Claimed | bool | None:
    """Claim the next due delivery (a whole digest for digest subscribers). None when nothing is due;
    False when the claimed rows could not be delivered at all (subscriber gone) and were settled here."""
    with store.session() as s:
        due = (AlertRow.status == "pending", AlertRow.next_attempt_at <= now,
               or_(AlertRow.claimed_until.is_(None), AlertRow.claimed_until < now))
        q = select(AlertRow).where(*due)
        if skip:
            q = q.where(AlertRow.id.not_in(skip))
        q = q.order_by(AlertRow.next_attempt_at, AlertRow.id).limit(1)
        if store.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        first = s.scalars(q).first()
        if first is None:
            return None
        rows = [first]
        if first.digest:
            more = (select(AlertRow).where(*due, AlertRow.digest.is_(True),
                                           AlertRow.subscriber_id == first.subscriber_id, AlertRow.id != first.id)
                    .order_by(AlertRow.id))
            if store.dialect == "postgresql":
                more = more.with_for_update(skip_locked=True)
            rows += list(s.scalars(more))
        sub_row = s.get(Subscriber, first.subscriber_id)
        if sub_row is None or not sub_row.enabled:
            for r in rows:
                r.status, r.last_error = "dead", "subscriber removed from the configuration"
            return False
        for r in rows:
            r.claimed_by, r.claimed_until = worker, now + notify.lease
        sub = subscriber_config(sub_row)
        watch_ids = {r.event.watch_id for r in rows}
        watch_names: dict[int | None, str] = dict(s.execute(select(Watch.id, Watch.name)
                                                            .where(Watch.id.in_(watch_ids - {None}))).all())
        labels: dict[str, str | None] = {}
        alerts = []
        for r in rows:
            key = r.event.topic_key
            if key and key not in labels:
                labels[key] = topic_label(s, key)
            event = _event_record(r.event, watch_names.get(r.event.watch_id))
            alerts.append(Alert(alert_id=r.uid, subscriber=sub.name, event=event,
                                topic_label=labels.get(key) if key else None))
        delivery_id = digest_id([r.uid for r in rows]) if first.digest else first.uid
        return _Claimed(Delivery(delivery_id, sub, alerts), [r.id for r in rows])


def _settle(store: Store, notify: NotifyConfig, claimed: _Claimed, error: NotifyError | None,
            report: SendReport, now: dt.datetime) -> None:
    with store.session() as s:
        rows = s.scalars(select(AlertRow).where(AlertRow.id.in_(claimed.row_ids), AlertRow.status == "pending"))
        for r in rows:
            r.attempts += 1
            r.claimed_by, r.claimed_until = None, None
            if error is None:
                r.status, r.sent_at = "sent", utcnow()
                report.sent += 1
            elif error.retryable and r.attempts < notify.max_attempts:
                r.last_error = redact(str(error))[:2000]
                r.next_attempt_at = now + dt.timedelta(seconds=backoff_delay(r.attempts, notify, error.retry_after))
                report.retrying += 1
            else:
                r.last_error = redact(str(error))[:2000]
                r.status = "dead"
                report.dead += 1


def deliver(delivery: Delivery, notify: NotifyConfig) -> None:
    """Send one delivery now; raises NotifyError. Any other failure counts as a retryable error."""
    try:
        notifier_for(delivery.subscriber, notify).send(delivery)
    except NotifyError:
        raise
    except Exception as e:
        log.exception("notifier for %s failed unexpectedly", delivery.subscriber.name)
        raise NotifyError(f"{e.__class__.__name__}: {e}") from e


def deliver_due(store: Store, config: Config, *, now: dt.datetime | None = None, worker: str = WORKER,
                limit: int | None = None) -> SendReport:
    """Deliver every alert due at `now`, one delivery at a time: claim (short transaction), send (no
    transaction open), then mark sent or schedule the retry. Safe to run in several processes at once."""
    notify = config.notify
    report = SendReport()
    tried: set[int] = set()
    while limit is None or report.attempted < limit:
        at = now or utcnow()  # `now` is for tests and replays: retries are scheduled from it
        claimed = _claim_next(store, notify, at, worker, tried)
        if claimed is None:
            break
        if claimed is False:
            report.dead += 1
            continue
        tried.update(claimed.row_ids)
        error: NotifyError | None = None
        try:
            deliver(claimed.delivery, notify)
        except NotifyError as e:
            error = e
            report.errors.append(redact(str(e)))
            log.warning("alert %s to %s failed: %s", claimed.delivery.delivery_id,
                        claimed.delivery.subscriber.name, redact(str(e)))
        _settle(store, notify, claimed, error, report, now or utcnow())
    return report


async def sender_loop(store: Store, config: Config, stop: asyncio.Event) -> None:
    """Run `deliver_due` every `notify.send_interval` until `stop` is set."""
    interval = config.notify.send_interval.total_seconds()
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(deliver_due, store, config)
            if report.attempted:
                log.info("outbox: %d sent, %d retrying, %d dead", report.sent, report.retrying, report.dead)
        except Exception:
            log.exception("outbox sender pass failed; trying again in %.0fs", interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


# --------------------------------------------------------------------------- operator actions


def find_alert(s: Session, ident: str) -> AlertRow:
    """An alert by numeric id or by (a prefix of at least 6 characters of) its uid."""
    from watcher.review import valid_id

    number = int(ident) if ident.isascii() and ident.isdigit() else 0
    row = s.get(AlertRow, number) if valid_id(s, AlertRow, number) else None
    if row is None and len(ident) >= 6:
        rows = s.scalars(select(AlertRow).where(AlertRow.uid.startswith(ident)).limit(2)).all()
        row = rows[0] if len(rows) == 1 else None
    if row is None:
        raise UnknownAlert(f"no alert {ident!r} (give the id shown by `watcher alerts`)")
    return row


def retry_alert(store: Store, ident: str) -> AlertRow:
    """Re-queue a dead (or waiting) alert for delivery now, with a fresh attempt budget. A sent alert
    is never re-queued: that is the promise that nothing is sent twice."""
    with store.session() as s:
        row = find_alert(s, ident)
        if row.status == "sent":
            raise UnknownAlert(f"alert {row.id} was sent at {row.sent_at:%Y-%m-%d %H:%M} UTC; not sending it again")
        row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        row.claimed_by = row.claimed_until = None
        s.flush()
        s.expunge(row)
        return row
