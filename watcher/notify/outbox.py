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
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from watcher.config import Config, NotifyConfig, SubscriberConfig
from watcher.describe import importance
from watcher.errors import NotifyError, WatcherError
from watcher.logs import redact
from watcher.notify.render import Delivery, digest_id
from watcher.notify.targets import notifier_for
from watcher.records import Alert, ChangeEvent
from watcher.store import AlertEvent, AlertRow, ChangeEventRow, Store, Subscriber, Watch
from watcher.store.models import utcnow
from watcher.topic import resolve_topic_key, topic_labels

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


class UnknownAlert(WatcherError):
    exit_code = 2


def alert_uid(event_uids: str | list[str], subscriber: str) -> str:
    """Stable per (events, subscriber): the idempotency key receivers see as `event_id`. An alert of one
    event keeps the id it had when every alert carried one event."""
    joined = event_uids if isinstance(event_uids, str) else "|".join(sorted(event_uids))
    return hashlib.sha256(f"{joined}|{subscriber}".encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- enqueue


def subscriber_config(row: Subscriber) -> SubscriberConfig:
    return SubscriberConfig.model_validate(row.config)


def matches(sub: SubscriberConfig, event: ChangeEventRow, topic_keys: list[str] | None = None,
            watch: str | None = None) -> bool:
    """Whether `event` (of the watch named `watch`) passes the subscriber's filters. `topic_keys` are
    `sub.topics` resolved already (callers matching many events pass them once).

    A subscriber follows its `topics` and its `watches` (an event of either reaches it), or everything
    when it names neither; `events` and `min_confidence` then narrow that down."""
    if sub.events and event.type not in sub.events:
        return False
    if event.confidence < sub.min_confidence:
        return False
    if not sub.topics and not sub.watches:
        return True
    if watch is not None and watch in sub.watches:
        return True
    if sub.topics:
        key = event.topic_key or ""
        wanted = topic_keys if topic_keys is not None else [resolve_topic_key(t) for t in sub.topics]
        # A topic without a season ('All of Us Are Dead') follows every season of the work.
        return any(key == w or key.startswith(w + "#") for w in wanted)
    return False


def next_digest_time(sub: SubscriberConfig, now: dt.datetime) -> dt.datetime:
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(sub.digest.cron, timezone=ZoneInfo(sub.digest.timezone))
    fire = trigger.get_next_fire_time(None, now.astimezone(ZoneInfo(sub.digest.timezone)))
    return (fire or now).astimezone(dt.UTC)


def enqueue_alerts(s: Session, events: Iterable[ChangeEventRow], *, now: dt.datetime | None = None) -> int:
    """Write one alert per matching enabled subscriber holding all of `events` (the confirmed events of one
    check) that pass its filters, most important first; in the caller's transaction.

    Idempotent: an event already sent (or queued) to a subscriber in some alert is not queued to it again.
    Returns the number of alerts written.
    """
    confirmed = list({id(e): e for e in events if e.state == "confirmed"}.values())
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
    watch_ids = {e.watch_id for e in confirmed} - {None}
    watch_names: dict[int | None, str] = dict(s.execute(select(Watch.id, Watch.name)
                                                        .where(Watch.id.in_(watch_ids))).all()) if watch_ids else {}
    queued = set(s.execute(select(AlertEvent.event_id, AlertEvent.subscriber_id)
                           .where(AlertEvent.event_id.in_([e.id for e in confirmed]))))
    ranked = sorted(confirmed, key=lambda e: (importance(_event_record(e, None)), e.id))
    written = 0
    for row, cfg, keys in subscribers:
        mine = [e for e in ranked
                if (e.id, row.id) not in queued and matches(cfg, e, keys, watch_names.get(e.watch_id))]
        if not mine:
            continue
        uid = alert_uid([e.uid for e in mine], row.name)
        if s.scalar(select(AlertRow.id).where(AlertRow.uid == uid)) is not None:
            continue
        digest = cfg.mode == "digest"
        alert = AlertRow(uid=uid, event_id=mine[0].id, subscriber_id=row.id, status="pending", attempts=0,
                         next_attempt_at=next_digest_time(cfg, now) if digest else now, digest=digest,
                         created_at=now)
        s.add(alert)
        s.flush()
        s.add_all([AlertEvent(alert_id=alert.id, event_id=e.id, subscriber_id=row.id, position=i)
                   for i, e in enumerate(mine)])
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


def _event_record(row: ChangeEventRow, watch: str | None, *, topic_label: str | None = None,
                  link: str | None = None) -> ChangeEvent:
    return ChangeEvent(type=row.type, subject=row.subject, old=row.old, new=row.new, summary=row.summary,
                       evidence=row.evidence or "", confidence=row.confidence, topic=row.topic_key,
                       watch=watch, source_url=row.source_url, detected_at=row.detected_at, uid=row.uid,
                       topic_label=topic_label, link=link)


def web_link(base_url: str | None, event: ChangeEventRow, watch: str | None) -> str | None:
    """`watcher web`'s page for a change: the topic page for consensus, the snapshot (its diff and events)
    for a page change, the watch for a fetch failure."""
    if not base_url:
        return None
    base = base_url.rstrip("/")
    if event.type == "topic_consensus_changed" and event.topic_key:
        return f"{base}/topic/{quote(event.topic_key, safe='')}"
    if event.snapshot_id is not None:
        return f"{base}/snapshot/{event.snapshot_id}"
    if watch:
        return f"{base}/watch/{quote(watch, safe='')}"
    return f"{base}/topic/{quote(event.topic_key, safe='')}" if event.topic_key else None


def _alerts_of(s: Session, rows: list[AlertRow], subscriber: str, base_url: str | None) -> list[Alert]:
    """The claimed rows as Alert records: each with its events in order, labels and links filled in."""
    pairs = s.execute(select(AlertEvent.alert_id, ChangeEventRow).join(ChangeEventRow,
                                                                       AlertEvent.event_id == ChangeEventRow.id)
                      .where(AlertEvent.alert_id.in_([r.id for r in rows]))
                      .order_by(AlertEvent.alert_id, AlertEvent.position)).all()
    events: dict[int, list[ChangeEventRow]] = {}
    for alert_id, event in pairs:
        events.setdefault(alert_id, []).append(event)
    for r in rows:
        events.setdefault(r.id, [r.event])  # a row written before alerts listed their events
    every = [e for row_events in events.values() for e in row_events]
    watch_ids = {e.watch_id for e in every} - {None}
    watch_names: dict[int | None, str] = dict(s.execute(select(Watch.id, Watch.name)
                                                        .where(Watch.id.in_(watch_ids))).all()) if watch_ids else {}
    labels = topic_labels(s, {e.topic_key for e in every})
    out = []
    for r in rows:
        records = [_event_record(e, watch_names.get(e.watch_id), topic_label=labels.get(e.topic_key or ""),
                                 link=web_link(base_url, e, watch_names.get(e.watch_id))) for e in events[r.id]]
        out.append(Alert(alert_id=r.uid, subscriber=subscriber, events=records))
    return out


@dataclass
class _Claimed:
    delivery: Delivery
    row_ids: list[int]


def _claim_next(store: Store, notify: NotifyConfig, now: dt.datetime, worker: str,
                skip: set[int], base_url: str | None = None) -> _Claimed | bool | None:
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
        alerts = _alerts_of(s, rows, sub.name, base_url)
        delivery_id = digest_id([r.uid for r in rows]) if first.digest else first.uid
        return _Claimed(Delivery(delivery_id, sub, alerts), [r.id for r in rows])


def _settle(store: Store, notify: NotifyConfig, claimed: _Claimed, error: NotifyError | None,
            report: SendReport, now: dt.datetime) -> None:
    settled: list[tuple[str, str, int, int]] = []  # (status, alert uid, attempts, event id)
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
            if r.status != "pending":
                settled.append((r.status, r.uid, r.attempts, r.event_id))
    # Logged once committed: one line per alert sent (INFO) or given up on (WARNING).
    sub = claimed.delivery.subscriber
    for status, uid, attempts, event_id in settled:
        fields = {"what": "alert", "alert_id": uid, "status": status, "subscriber": sub.name,
                  "channel": sub.kind, "attempts": attempts, "delivery_id": claimed.delivery.delivery_id,
                  "event": event_id}
        if status == "sent":
            log.info("alert %s sent to %s (%s, attempt %d)", uid[:12], sub.name, sub.kind, attempts, extra=fields)
        else:
            log.warning("alert %s to %s is dead after %d attempts: %s", uid[:12], sub.name, attempts,
                        redact(str(error)), extra={**fields, "error": redact(str(error))})


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
        claimed = _claim_next(store, notify, at, worker, tried, config.web.base_url)
        if claimed is None:
            break
        if claimed is False:
            report.dead += 1
            log.warning("alerts to a subscriber removed from the configuration are dead",
                        extra={"what": "alert", "status": "dead"})
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
        except Exception as e:
            from watcher.health import HEALTH, is_database_unavailable

            if is_database_unavailable(e):  # logged once per outage (watcher.health), not at every pass
                HEALTH.database_failed(e, "outbox sender")
                store.recover(e)
            else:
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


# --------------------------------------------------------------------------- `watcher status`


def status(config: Config, store: Store) -> dict[str, Any]:
    """The outbox section of `watcher status`: how many alerts wait (due now, retrying later, held for a
    digest), are being sent, were sent in the last day, are dead; and how long the oldest due one has waited."""
    from sqlalchemy import func

    now = utcnow()
    pending = AlertRow.status == "pending"
    with store.session() as s:
        def count(*where: Any) -> int:
            return int(s.scalar(select(func.count()).select_from(AlertRow).where(*where)) or 0)

        sending = count(pending, AlertRow.claimed_until > now)
        due = count(pending, AlertRow.digest.is_(False), AlertRow.attempts == 0)
        retrying = count(pending, AlertRow.attempts > 0)
        digest = count(pending, AlertRow.digest.is_(True), AlertRow.attempts == 0)
        oldest = s.scalar(select(func.min(AlertRow.created_at)).where(pending, AlertRow.next_attempt_at <= now))
        dead = count(AlertRow.status == "dead")
        sent_day = count(AlertRow.status == "sent", AlertRow.sent_at >= now - dt.timedelta(days=1))
    return {"pending": due + retrying + digest, "due_new": due, "retrying": retrying, "digest": digest,
            "sending": sending, "dead": dead, "sent_last_day": sent_day,
            "oldest_due_age_s": round((now - oldest).total_seconds()) if oldest else None}
