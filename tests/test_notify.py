"""The outbox against real receivers: aiosmtpd for email, a local HTTP endpoint for webhooks (both backends)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.receivers import SmtpSink, free_port
from watcher.changes import save_events
from watcher.config import Config
from watcher.notify import deliver_due, enqueue_alerts, retry_alert, send_test, verify
from watcher.records import ChangeEvent
from watcher.store.models import AlertRow, Watch, utcnow

SECRET = "s3cret-for-tests-only"
TOPIC = "all of us are dead#2"
XSS = '<script>alert("pwned")</script> <img src=x onerror=alert(1)>'


def make_config(database_url: str, subscribers: list[dict], smtp_port: int = 25, **notify) -> Config:
    return Config.model_validate(config_data(database_url, subscribers, smtp_port, **notify))


def config_data(database_url: str, subscribers: list[dict], smtp_port: int = 25, **notify) -> dict:
    return {
        "watcher": {"database_url": database_url},
        "notify": {"backoff_base": "1s", "backoff_max": "30s", "max_attempts": 5, "lease": "2s",
                   "timeout": "5s", "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout": "5s"}, **notify},
        "watch": [{"name": "blueroads", "url": "https://blueroads.in/blog/wp-json/wp/v2/posts/161",
                   "kind": "wordpress", "interval": "6h", "topic": {"work": "All of Us Are Dead", "season": 2}}],
        "subscriber": subscribers,
    }


def release_event(n: int = 0, evidence: str = "Early 2027 is the most realistic window.", **over) -> ChangeEvent:
    fields = dict(
        type="release_changed", subject="release",
        old={"text": "2023", "earliest": "2023-01-01", "latest": "2023-12-31", "precision": "year"},
        new={"text": "early 2027", "earliest": "2027-01-01", "latest": "2027-04-30", "precision": "year-part"},
        summary="release window 2023 -> early 2027", evidence=evidence, confidence=0.9, topic=TOPIC,
        watch="blueroads", source_url="https://blueroads.in/blog/all-of-us-are-dead-season-2/",
        detected_at=utcnow(), uid=f"test-event-{n}")
    fields.update(over)
    return ChangeEvent(**fields)


def store_events(store, config: Config, *events: ChangeEvent) -> int:
    store.sync_watches(config.watch)
    store.sync_subscribers(config.subscriber)
    with store.session() as s:
        watch_id = s.scalar(select(Watch.id).where(Watch.name == "blueroads"))
        rows = save_events(s, list(events), watch_id=watch_id, snapshot_id=None, topic_key=TOPIC)
        return enqueue_alerts(s, rows)


def alerts(store) -> list[AlertRow]:
    with store.session() as s:
        rows = list(s.scalars(select(AlertRow).order_by(AlertRow.id)))
        s.expunge_all()
        return rows


def later(seconds: float = 3600) -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=seconds)


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("WATCHER_TEST_HOOK_SECRET", SECRET)
    return "WATCHER_TEST_HOOK_SECRET"


# --------------------------------------------------------------------------- email


def test_smtp_down_then_up_delivers_once(store, database_url):
    sink = SmtpSink()
    config = make_config(database_url, [{"name": "me", "email": "me@example.org"}], smtp_port=sink.port,
                         backoff_base="60s")
    assert store_events(store, config, release_event(evidence=f"Early 2027 is likely. {XSS}")) == 1

    first = deliver_due(store, config)  # nothing listens on the port yet
    assert (first.sent, first.retrying) == (0, 1)
    [row] = alerts(store)
    assert row.status == "pending" and row.attempts == 1 and "SMTP" in row.last_error
    assert row.next_attempt_at > utcnow()

    sink.start()
    try:
        assert deliver_due(store, config).sent == 0  # the retry is not due yet: backoff is honoured
        assert deliver_due(store, config, now=later()).sent == 1
        assert deliver_due(store, config, now=later(2 * 3600)).attempted == 0
    finally:
        sink.stop()

    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg["Subject"] == f"{TOPIC}: release early 2027 (was 2023)"
    assert msg["To"] == "me@example.org"
    [row] = alerts(store)
    assert row.status == "sent" and row.attempts == 2
    assert msg["X-Watcher-Event-Id"] == row.uid
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    # Scraped text is inert in the HTML part: escaped, never markup.
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "early 2027" in html and "2023" in html
    assert 'href="https://blueroads.in/blog/all-of-us-are-dead-season-2/"' in html
    assert '"Early 2027 is likely.' in text


def test_email_subject_names_topic_and_change_end_to_end(store, database_url, tmp_path):
    """Two fetches of a page whose release window moves: the alert's subject says what changed."""
    from tests.pageserver import PageServer
    from tests.test_pipeline import cycle, page

    sink = SmtpSink().start()
    try:
        with PageServer() as server:
            windows = iter(["late 2026", "early 2027"])
            server.route("/show", lambda _: page(next(windows)))
            config = Config.model_validate({
                **config_data(database_url, [{"name": "me", "email": "me@example.org"}], smtp_port=sink.port),
                "fetch": {"autothrottle": False, "retries": 0, "timeout": "5s", "allow_private": [server.allow]},
                "watch": [{"name": "show", "url": server.url("/show"), "interval": "1h"}]})
            cycle(store, config)
            assert cycle(store, config).results[0].alerts == 1
        assert deliver_due(store, config).sent == 1
    finally:
        sink.stop()
    [msg] = sink.messages
    assert msg["Subject"] == "Show S2: release early 2027 (was late 2026)"


def test_digest_groups_alerts_by_topic_in_one_message(store, database_url):
    sink = SmtpSink().start()
    try:
        config = make_config(database_url, [{"name": "daily", "email": "d@example.org", "mode": "digest",
                                             "digest": {"cron": "0 8 * * *", "timezone": "Europe/Paris"}}],
                             smtp_port=sink.port)
        cast = release_event(1, type="cast_status_changed", subject="Yoon Chan-young",
                             old={"status": "listed"}, new={"status": "unconfirmed"}, summary="cast status")
        other = release_event(2, topic="squid game#3", summary="release window", new={"text": "June 2025"})
        # Three checks (each its own alert), one digest message.
        assert [store_events(store, config, e) for e in (release_event(0), cast, other)] == [1, 1, 1]
        rows = alerts(store)
        due = {r.next_attempt_at for r in rows}
        assert len(due) == 1  # one digest time for all three
        [when] = due
        paris = when.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
        assert (paris.hour, paris.minute) == (8, 0) and when > utcnow()

        assert deliver_due(store, config).attempted == 0  # not before 08:00 Paris time
        report = deliver_due(store, config, now=when + dt.timedelta(seconds=1))
        assert report.sent == 3
    finally:
        sink.stop()
    [msg] = sink.messages
    assert msg["Subject"].startswith("watcher digest: 3 changes")
    text = msg.get_body(("plain",)).get_content()
    assert text.index("== all of us are dead#2 ==") < text.index("== squid game#3 ==")
    assert "Yoon Chan-young: unconfirmed (was listed)" in text


def test_filters_by_topic_event_type_and_confidence(store, database_url):
    config = make_config(database_url, [
        {"name": "all", "webhook": "http://127.0.0.1:9/x"},
        {"name": "aouad", "webhook": "http://127.0.0.1:9/x", "topics": ["All of Us Are Dead"]},
        {"name": "s3-only", "webhook": "http://127.0.0.1:9/x", "topics": ["All of Us Are Dead Season 3"]},
        {"name": "cast", "webhook": "http://127.0.0.1:9/x", "events": ["cast_status_changed"]},
        {"name": "sure", "webhook": "http://127.0.0.1:9/x", "min_confidence": 0.95},
    ])
    assert store_events(store, config, release_event(confidence=0.9)) == 2
    with store.session() as s:
        names = sorted(a.subscriber.name for a in s.scalars(select(AlertRow)))
    assert names == ["all", "aouad"]
    # The same event again (a retried transaction, a re-run) writes nothing new.
    with store.session() as s:
        from watcher.store.models import ChangeEventRow

        assert enqueue_alerts(s, list(s.scalars(select(ChangeEventRow)))) == 0
    pending = release_event(5)
    with store.session() as s:
        rows = save_events(s, [pending], watch_id=None, snapshot_id=None, topic_key=TOPIC, state="pending")
        assert enqueue_alerts(s, rows) == 0  # unconfirmed events are not alerted


# --------------------------------------------------------------------------- webhook


def test_webhook_500_three_times_then_200_delivered_once_and_signed(store, database_url, hook, secret_env):
    hook.script = [500, 503, (500, {"Retry-After": "120"})]
    config = make_config(database_url, [{"name": "hook", "webhook": hook.url, "secret_env": secret_env}])
    store_events(store, config, release_event())
    now = utcnow()
    for attempt in range(1, 4):
        report = deliver_due(store, config, now=now)
        assert report.retrying == 1, report
        [row] = alerts(store)
        assert row.attempts == attempt and row.status == "pending"
        wait = (row.next_attempt_at - now).total_seconds()
        if attempt == 3:
            assert wait >= 120  # Retry-After honoured
        now = row.next_attempt_at + dt.timedelta(seconds=1)
    assert deliver_due(store, config, now=now).sent == 1
    assert deliver_due(store, config, now=later(86400)).attempted == 0

    assert len(hook.hits) == 4
    ids = {h.headers["X-Watcher-Event-Id"] for h in hook.hits}
    [row] = alerts(store)
    assert ids == {row.uid} and row.status == "sent"
    last = hook.hits[-1]
    ts = last.headers["X-Watcher-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + last.body, hashlib.sha256).hexdigest()
    assert last.headers["X-Watcher-Signature"] == expected
    assert verify(SECRET, ts, last.body, expected)
    assert not verify(SECRET, ts, last.body + b" ", expected)  # body tampered
    assert not verify(SECRET, ts, last.body, expected, now=int(ts) + 3600)  # replayed an hour later
    body = json.loads(last.body)
    assert body["event_id"] == row.uid and body["version"] == 2 and body["type"] == "alert"
    assert body["topic"] == TOPIC and body["watch"] == "blueroads"
    assert body["source_url"].startswith("https://blueroads.in/")
    [event] = body["events"]
    assert event["change_id"] == "test-event-0" and event["type"] == "release_changed"
    assert event["old"]["text"] == "2023" and event["new"]["text"] == "early 2027"
    assert event["summary"] == "release early 2027 (Jan–Apr 2027), was 2023"
    assert event["evidence"] and event["detected_at"]


def test_webhook_400_is_dead_at_once_and_listed(store, database_url, hook, tmp_path):
    hook.script = [400]
    config = make_config(database_url, [{"name": "hook", "webhook": hook.url}])
    store_events(store, config, release_event())
    assert deliver_due(store, config).dead == 1
    assert deliver_due(store, config, now=later(86400)).attempted == 0
    assert len(hook.hits) == 1
    [row] = alerts(store)
    assert row.status == "dead" and row.attempts == 1 and "HTTP 400" in row.last_error

    cfg = _write_config(tmp_path, database_url, hook.url)
    listing = _watcher(cfg, "alerts", "--status", "dead", "--json")
    [shown] = json.loads(listing.stdout)
    assert shown["id"] == row.id and shown["status"] == "dead" and "HTTP 400" in shown["last_error"]
    assert json.loads(_watcher(cfg, "alerts", "--status", "sent", "--json").stdout) == []

    # An operator fixes the endpoint and re-queues it.
    _watcher(cfg, "alerts", "retry", str(row.id))
    assert deliver_due(store, config).sent == 1
    assert len(hook.hits) == 2
    with pytest.raises(Exception, match="not sending it again"):
        retry_alert(store, str(row.id))


def test_exhausted_retries_end_dead_with_last_error(store, database_url, hook):
    hook.default = 502
    config = make_config(database_url, [{"name": "hook", "webhook": hook.url}], max_attempts=3)
    store_events(store, config, release_event())
    for day in range(1, 5):
        deliver_due(store, config, now=later(86400 * day))
    [row] = alerts(store)
    assert row.status == "dead" and row.attempts == 3 and "HTTP 502" in row.last_error
    assert len(hook.hits) == 3


def test_sender_killed_between_send_and_mark_resends_same_id(store, database_url, hook, tmp_path, secret_env):
    """SIGKILL a sender process while the receiver holds the request: nothing is marked, the claim
    expires, a restarted sender sends the same event id again; after that, never again."""
    hook.hold = True
    config = make_config(database_url, [{"name": "hook", "webhook": hook.url, "secret_env": secret_env}])
    store_events(store, config, release_event())
    cfg = _write_config(tmp_path, database_url, hook.url, secret_env=secret_env)
    env = {**os.environ, secret_env: SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "sender"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert hook.first.wait(30), "the sender never called the webhook"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    hook.release.set()
    [row] = alerts(store)
    assert row.status == "pending" and row.sent_at is None and row.claimed_until is not None

    time.sleep(2.5)  # the 2 s lease of the killed sender expires
    hook.hold = False
    again = _watcher(cfg, "sender", "--once", "--json", env=env)
    assert json.loads(again.stdout)["sent"] == 1
    assert json.loads(_watcher(cfg, "sender", "--once", "--json", env=env).stdout)["sent"] == 0

    assert len(hook.hits) == 2
    assert hook.hits[0].headers["X-Watcher-Event-Id"] == hook.hits[1].headers["X-Watcher-Event-Id"] == row.uid
    assert json.loads(hook.hits[0].body) == json.loads(hook.hits[1].body)
    [row] = alerts(store)
    assert row.status == "sent"


def test_notify_test_sends_a_sample_and_reports_failure(sqlite_url, hook):
    config = make_config(sqlite_url, [{"name": "hook", "webhook": hook.url},
                                      {"name": "down", "webhook": f"http://127.0.0.1:{free_port()}/x"}])
    delivery = send_test(config, "hook")
    [hit] = hook.hits
    assert json.loads(hit.body)["event_id"] == delivery.delivery_id
    with pytest.raises(Exception, match="ConnectError"):
        send_test(config, "down")


def test_apprise_target_posts_to_a_local_json_endpoint(store, database_url, hook):
    port = hook.httpd.server_port
    config = make_config(database_url, [{"name": "chat", "apprise": f"json://127.0.0.1:{port}/hook"}])
    store_events(store, config, release_event())
    assert deliver_due(store, config).sent == 1
    [hit] = hook.hits
    payload = json.loads(hit.body)
    assert payload["title"] == f"{TOPIC}: release early 2027 (was 2023)"
    assert "Early 2027 is the most realistic window." in payload["message"]


# --------------------------------------------------------------------------- helpers


def _write_config(tmp_path: Path, database_url: str, hook_url: str, secret_env: str | None = None) -> Path:
    cfg = tmp_path / "watcher.toml"
    secret = f'secret_env = "{secret_env}"\n' if secret_env else ""
    cfg.write_text(f"""
[watcher]
database_url = "{database_url}"

[notify]
lease = "2s"
timeout = "10s"
send_interval = "0.2s"
backoff_base = "1s"

[[watch]]
name = "blueroads"
url = "https://blueroads.in/blog/wp-json/wp/v2/posts/161"
kind = "wordpress"
interval = "6h"
topic = {{ work = "All of Us Are Dead", season = 2 }}

[[subscriber]]
name = "hook"
webhook = "{hook_url}"
{secret}""")
    return cfg


def _watcher(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), *args], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result
