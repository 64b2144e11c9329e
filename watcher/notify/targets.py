"""The notifiers: email (SMTP), signed webhook, Apprise. Each sends one Delivery or raises NotifyError.

A NotifyError says whether trying again can help (`retryable`) and, when the target said so, how long
to wait (`retry_after`, seconds). Error messages never carry secrets: they are redacted before storing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from watcher.config import NotifyConfig, SubscriberConfig, secret_from_env
from watcher.errors import ConfigError, NotifyError
from watcher.headers import parse_retry_after
from watcher.notify.render import Delivery, html_body, text_body, title_of, webhook_body

USER_AGENT = "watcher-webhook/0.1"
SIGNATURE_HEADER = "X-Watcher-Signature"
EVENT_ID_HEADER = "X-Watcher-Event-Id"
TIMESTAMP_HEADER = "X-Watcher-Timestamp"


class Notifier(Protocol):
    def send(self, delivery: Delivery) -> None: ...


def _secret(var: str | None, what: str) -> str | None:
    """The secret as a delivery needs it: missing, it is a failed delivery (retried: the operator may set it
    and restart), told in one line, not a crash. `watcher run` refuses to start without it anyway."""
    try:
        return secret_from_env(var, what)
    except ConfigError as e:
        raise NotifyError(str(e)) from None


# --------------------------------------------------------------------------- email


def build_email(delivery: Delivery, sender: str) -> EmailMessage:
    title = title_of(delivery)
    msg = EmailMessage()
    msg["Subject"] = title
    msg["From"] = sender
    msg["To"] = delivery.subscriber.email or ""
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    # Stable per alert: a resent alert carries the same Message-ID, which mail systems deduplicate on.
    msg["Message-ID"] = f"<{delivery.delivery_id}@watcher.local>"
    msg["X-Watcher-Event-Id"] = delivery.delivery_id
    msg.set_content(text_body(delivery, title))
    msg.add_alternative(html_body(delivery, title), subtype="html")
    return msg


class EmailNotifier:
    def __init__(self, config: NotifyConfig) -> None:
        self.smtp = config.smtp
        self.timeout = config.smtp.timeout.total_seconds()

    def send(self, delivery: Delivery) -> None:
        cfg = self.smtp
        msg = build_email(delivery, cfg.sender)
        password = _secret(cfg.password_env, "notify.smtp.password_env")
        try:
            if cfg.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=self.timeout,
                                                        context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout)
            with client:
                if cfg.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                if cfg.username:
                    client.login(cfg.username, password or "")
                client.send_message(msg)
        except smtplib.SMTPResponseException as e:
            # 5xx is permanent (bad address, auth refused); 4xx is the server asking us to come back.
            raise NotifyError(f"SMTP {e.smtp_code}: {e.smtp_error!r}", retryable=e.smtp_code < 500) from e
        except smtplib.SMTPRecipientsRefused as e:
            raise NotifyError(f"SMTP refused recipients: {list(e.recipients)}", retryable=False) from e
        except (OSError, smtplib.SMTPException) as e:
            raise NotifyError(f"SMTP {cfg.host}:{cfg.port}: {e.__class__.__name__}: {e}") from e


# --------------------------------------------------------------------------- webhook


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over '<timestamp>.<raw body>': the timestamp is signed, so a replay cannot refresh it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does (docs/webhooks.md): constant-time compare, and reject stale timestamps."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    def __init__(self, config: NotifyConfig) -> None:
        self.timeout = config.timeout.total_seconds()

    def send(self, delivery: Delivery) -> None:
        import httpx

        sub = delivery.subscriber
        body = json.dumps(webhook_body(delivery), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   EVENT_ID_HEADER: delivery.delivery_id, TIMESTAMP_HEADER: timestamp}
        secret = _secret(sub.secret_env, f"subscriber {sub.name}: secret_env")
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            # No redirects: a signed body must not be forwarded somewhere the operator did not configure.
            response = httpx.post(sub.webhook or "", content=body, headers=headers, timeout=self.timeout,
                                  follow_redirects=False)
        except httpx.HTTPError as e:
            raise NotifyError(f"webhook: {e.__class__.__name__}: {e}") from e
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"webhook answered HTTP {status}"
        if status == 429 or status >= 500:
            raise NotifyError(reason, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status == 408:
            raise NotifyError(reason)
        raise NotifyError(reason, retryable=False)


# --------------------------------------------------------------------------- apprise


class AppriseNotifier:
    """Slack, Discord, Telegram, ... through Apprise URLs. `{secret}` in the URL is replaced by the value of
    the subscriber's `secret_env`, so tokens stay out of the config file."""

    def send(self, delivery: Delivery) -> None:
        import apprise

        sub = delivery.subscriber
        url = sub.apprise or ""
        secret = _secret(sub.secret_env, f"subscriber {sub.name}: secret_env")
        if secret:
            url = url.replace("{secret}", secret)
        title = title_of(delivery)
        client = apprise.Apprise()
        if not client.add(url):
            raise NotifyError(f"subscriber {sub.name}: not a usable Apprise URL", retryable=False)
        try:
            ok = client.notify(title=title, body=text_body(delivery, title), body_format=apprise.NotifyFormat.TEXT)
        except (TimeoutError, OSError) as e:
            raise NotifyError(f"apprise: {e.__class__.__name__}") from e
        if not ok:
            raise NotifyError("apprise: the service did not accept the notification")


def notifier_for(subscriber: SubscriberConfig, config: NotifyConfig) -> Notifier:
    if subscriber.email:
        return EmailNotifier(config)
    if subscriber.webhook:
        return WebhookNotifier(config)
    return AppriseNotifier()
