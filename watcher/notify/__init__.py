"""The notify stage: the outbox of alerts and the notifiers that deliver them (email, webhook, Apprise).

Public entry points: `enqueue_alerts(session, events)` in the transaction that stores the events;
`deliver_due(store, config)` / `sender_loop(store, config, stop)` to deliver; `retry_alert`, `send_test`
for operators.
"""

from __future__ import annotations

from watcher.config import Config
from watcher.errors import NotifyError
from watcher.notify.outbox import (
    SendReport,
    UnknownAlert,
    alert_uid,
    deliver,
    deliver_due,
    enqueue_alerts,
    find_alert,
    retry_alert,
    sender_loop,
)
from watcher.notify.render import Delivery, sample_alert
from watcher.notify.targets import sign, verify
from watcher.store.models import utcnow

__all__ = [
    "Delivery",
    "NotifyError",
    "SendReport",
    "UnknownAlert",
    "alert_uid",
    "deliver_due",
    "enqueue_alerts",
    "find_alert",
    "retry_alert",
    "send_test",
    "sender_loop",
    "sign",
    "verify",
]


def send_test(config: Config, subscriber: str) -> Delivery:
    """Send a sample alert to one subscriber right now (not through the outbox); raises NotifyError."""
    sub = config.subscriber_by_name(subscriber)
    alert = sample_alert(sub.name, utcnow())
    delivery = Delivery(alert.alert_id, sub.model_copy(update={"mode": "immediate"}), [alert])
    deliver(delivery, config.notify)
    return delivery
