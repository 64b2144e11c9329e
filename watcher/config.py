"""Configuration: `config/watcher.toml`, validated with pydantic.

A bad config fails at start with a message that names the file, the key and what is wrong. Secrets are
never in the file: the file names environment variables (`password_env`, `secret_env`) that hold them.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from watcher.errors import ConfigError
from watcher.records import EVENT_TYPES, Topic, WatchKind

DEFAULT_CONFIG = Path("config/watcher.toml")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """'90', '90s', '15m', '6h', '1d' or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration; write e.g. '90s', '15m', '6h' or '1d'")
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def format_duration(value: Any) -> str:
    """A duration as the config writes it: '20s', '6h', '1d', '90m'; '1h30m5s' when no one unit fits.

    Accepts what `parse_duration` does and the ISO 8601 form ('PT20S') a stored watch config holds, so no
    listing shows a timedelta repr or an ISO period. Not a duration: returned as text, unchanged."""
    if value is None or value == "":
        return ""
    try:
        if isinstance(value, str) and value.strip().upper().startswith("P"):
            from pydantic import TypeAdapter

            delta = TypeAdapter(timedelta).validate_python(value.strip())
        else:
            delta = parse_duration(value)
    except (ValueError, ValidationError):
        return str(value)
    seconds = delta.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g}s"
    left = int(seconds)
    if left == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left % size == 0:
            return f"{left // size}{unit}"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts)


def _http_url(value: str) -> str:
    """An http(s) URL with a host and a valid port (errors name the problem, not a traceback at fetch time)."""
    from watcher.text import display_url

    shown = display_url(value)
    try:
        parts = urlsplit(value)
    except ValueError as e:  # a bad [IPv6] host
        raise ValueError(f"{shown!r} is not a valid URL: {e}") from None
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        given = parts.netloc.rpartition(":")[2]
        raise ValueError(f"{shown!r}: port {given!r} is not a port (1-65535)") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{shown!r} is not an http(s) URL")
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host name")
    if port == 0:
        raise ValueError(f"{shown!r}: port 0 is not a port one can fetch from (1-65535)")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError(f"{shown!r} contains spaces or control characters; percent-encode them")
    return value


def _watch_url(value: str) -> str:
    value = _http_url(value)
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        from watcher.text import display_url

        raise ValueError(f"{display_url(value)!r}: credentials in the URL are refused (they would be shown and "
                         'logged wherever the URL is); write auth = { username = "...", password_env = "VAR" } '
                         "and put the password in that environment variable")
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: _http_url(str(v)))]
WatchUrl = Annotated[str, BeforeValidator(lambda v: _watch_url(str(v)))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicConfig(_Model):
    work: str = Field(min_length=1)
    season: int | None = Field(default=None, ge=0)

    def topic(self) -> Topic:
        return Topic(self.work, self.season)


class ScopeConfig(_Model):
    css: str | None = None
    xpath: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ScopeConfig:
        if bool(self.css) == bool(self.xpath):
            raise ValueError("give exactly one of 'css' or 'xpath'")
        return self


class AuthConfig(_Model):
    """HTTP basic authentication for a watch; the password comes from the environment, never the file."""

    username: str = Field(min_length=1)
    password_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")

    def credentials(self, watch: str) -> tuple[str, str]:
        return self.username, secret_from_env(self.password_env, f"watch {watch!r} auth") or ""


class BrowserConfig(_Model):
    """How a `kind = "browser"` watch renders its page in headless Chromium."""

    # A CSS selector the page must contain before it is read (the element the page's script writes).
    wait_for: str | None = Field(default=None, min_length=1)
    # Navigation and waiting together; default fetch.timeout. Capped by the fetch deadline.
    timeout: Duration | None = None

    @field_validator("wait_for")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is not None:
            from cssselect import GenericTranslator, SelectorError

            try:
                GenericTranslator().css_to_xpath(v)
            except SelectorError as e:
                raise ValueError(f"wait_for {v!r} is not a CSS selector: {e}") from e
        return v

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v <= timedelta(0):
            raise ValueError("the browser timeout must be more than 0s")
        return v


class RetentionConfig(_Model):
    """How much history to keep (`watcher db prune` and the daemon, daily). A snapshot goes when it is past
    `keep_snapshots` newest of its watch or older than `max_age`, unless something still needs it (the
    latest state of each entry and the one before it, events, undelivered alerts: watcher/retention.py).
    0 turns a limit off."""

    keep_snapshots: int = Field(default=100, ge=0)
    max_age: Duration = timedelta(days=365)


class WatchRetention(_Model):
    """Per-watch retention: each key given overrides the global `[retention]` one."""

    keep_snapshots: int | None = Field(default=None, ge=0)
    max_age: Duration | None = None


class WatchConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    url: WatchUrl
    auth: AuthConfig | None = None
    kind: WatchKind = "html"
    # kind = "browser" only: `browser = { wait_for = "#release", timeout = "20s" }`.
    browser: BrowserConfig | None = None
    topic: TopicConfig | None = None
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration = timedelta(minutes=5)
    scope: ScopeConfig | None = None
    confirm: int = Field(default=1, ge=1, le=5)
    enabled: bool = True
    # Noise control: lines matching any of these regular expressions (case-insensitive, anywhere in the
    # line) are removed before hashing and diffing; `text_changes = false` alerts on facts only.
    ignore: list[str] = Field(default_factory=list)
    text_changes: bool = True
    # Flap damping: a change back to a value this watch held within its last `flap_window` snapshots is held
    # as `flapping` until it has been seen on `confirm` more fetches (unset: `[changes] flap_window`; 0: off).
    flap_window: int | None = Field(default=None, ge=0, le=50)
    # A feed or WordPress listing keeps only its newest `max_entries` entries (unset: `fetch.max_entries`).
    max_entries: int | None = Field(default=None, ge=1, le=100_000)
    retention: WatchRetention | None = None

    @field_validator("ignore")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"ignore pattern {pattern!r} is not a regular expression: {e}") from e
        return patterns

    @model_validator(mode="after")
    def _schedule(self) -> WatchConfig:
        if self.browser is not None and self.kind != "browser":
            raise ValueError(f"'browser' options are for kind = \"browser\" watches; this one is kind = "
                             f"{self.kind!r}")
        if self.interval is None and self.cron is None:
            raise ValueError("give 'interval' (e.g. '6h') or 'cron' (e.g. '0 */6 * * *')")
        if self.interval is not None and self.cron is not None:
            raise ValueError("give only one of 'interval' and 'cron'")
        if self.interval is not None and self.interval < timedelta(seconds=1):
            raise ValueError("'interval' must be at least 1s")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as e:
                raise ValueError(f"cron {self.cron!r}: {e}") from e
        return self


class DigestConfig(_Model):
    cron: str = "0 8 * * *"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v


class SubscriberConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook: HttpUrl | None = None
    apprise: str | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    topics: list[str] = Field(default_factory=list)
    watches: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    mode: Literal["immediate", "digest"] = "immediate"
    digest: DigestConfig = DigestConfig()

    @property
    def kind(self) -> str:
        return "email" if self.email else "webhook" if self.webhook else "apprise"

    @property
    def target(self) -> str:
        return self.email or self.webhook or self.apprise or ""

    @model_validator(mode="after")
    def _target(self) -> SubscriberConfig:
        if sum(x is not None for x in (self.email, self.webhook, self.apprise)) != 1:
            raise ValueError("give exactly one of 'email', 'webhook' or 'apprise'")
        for event in self.events:
            if event not in EVENT_TYPES:
                raise ValueError(f"unknown event type {event!r}{did_you_mean(event, EVENT_TYPES)}; "
                                 f"known: {', '.join(EVENT_TYPES)}")
        return self


class DomainPolicy(_Model):
    """Politeness for one host, overriding `concurrency_per_domain` and `download_delay`."""

    concurrency: int | None = Field(default=None, ge=1)
    delay: Duration | None = None


class FetchConfig(_Model):
    user_agent: str = "watcher/0.1 (+https://github.com/newswatch/watcher; release-news monitor)"
    obey_robots: bool = True
    timeout: Duration = timedelta(seconds=30)
    max_bytes: int = Field(default=5_000_000, ge=1024)
    concurrency: int = Field(default=16, ge=1)
    concurrency_per_domain: int = Field(default=2, ge=1)
    retries: int = Field(default=2, ge=0, le=10)
    autothrottle: bool = True
    download_delay: Duration = timedelta(seconds=0)
    failures_before_event: int = Field(default=3, ge=1)
    max_backoff: Duration = timedelta(hours=6)
    # Non-public addresses (loopback, private, link-local, ...) a watch may fetch: "127.0.0.1:8080", "10.0.0.0/8".
    # A redirect or refresh from a public address never leads to a non-public one (watcher/egress.py).
    allow_private: list[str] = Field(default_factory=list)
    # Normalising and extracting one fetched check may take this long in the processing workers (a long
    # feed's batches share it; waiting for a free worker does not count); past it the check stops, keeps the
    # batches it stored, and is recorded `timeout`.
    processing_budget: Duration = timedelta(seconds=60)

    @field_validator("allow_private")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        from watcher.egress import parse_allow_entry

        for entry in v:
            parse_allow_entry(entry)
        return v

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("the fetch timeout must be more than 0s")
        return v

    @property
    def fetch_deadline(self) -> timedelta:
        """How long one fetch may take in all: robots.txt and every retry, each bounded by `timeout`."""
        return self.timeout * (self.retries + 2)
    # A feed or WordPress listing is cut to its newest entries (by date, then as listed) before it is
    # processed; a watch's own `max_entries` overrides this.
    max_entries: int = Field(default=200, ge=1, le=100_000)
    # How long a robots.txt verdict is trusted before it is fetched again (RFC 9309 advises at most a day).
    robots_ttl: Duration = timedelta(hours=24)
    # Per-host overrides, keyed by host name: `[fetch.domains."news.example.org"] concurrency = 1`.
    domains: dict[str, DomainPolicy] = Field(default_factory=dict)

    @field_validator("domains")
    @classmethod
    def _hosts(cls, v: dict[str, DomainPolicy]) -> dict[str, DomainPolicy]:
        out = {}
        for host, policy in v.items():
            if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", host):
                raise ValueError(f"{host!r} is not a host name; write e.g. \"news.example.org\" (no scheme, "
                                 f"port or path)")
            out[host.lower()] = policy
        return out

    def domain_policy(self, host: str) -> tuple[int, float]:
        """(concurrency, minimum delay in seconds) for requests to `host`."""
        policy = self.domains.get(host.lower())
        concurrency = policy.concurrency if policy and policy.concurrency else self.concurrency_per_domain
        delay = policy.delay if policy and policy.delay is not None else self.download_delay
        return concurrency, delay.total_seconds()


class SmtpConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["plain", "starttls", "tls"] = "plain"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    sender: str = "watcher@localhost"
    timeout: Duration = timedelta(seconds=30)


class NotifyConfig(_Model):
    max_attempts: int = Field(default=8, ge=1)
    backoff_base: Duration = timedelta(seconds=30)
    backoff_max: Duration = timedelta(hours=2)
    send_interval: Duration = timedelta(seconds=5)
    timeout: Duration = timedelta(seconds=20)
    # How long a sender owns a claimed alert; after a crash mid-send the alert is sent again (same id)
    # once the lease expires. Must exceed the longest send.
    lease: Duration = timedelta(minutes=2)
    smtp: SmtpConfig = SmtpConfig()


class RedisConfig(_Model):
    url: str = "redis://127.0.0.1:6379/0"
    # Scale-out (watcher/scale.py): a worker that stops renewing its jobs for this long (killed, frozen,
    # cut off) loses them to another worker. Renewed every quarter of it, so a live worker keeps a long check.
    lease: Duration = timedelta(seconds=60)

    @field_validator("lease")
    @classmethod
    def _lease(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=2):
            raise ValueError("'lease' must be at least 2s")
        return v


class WebConfig(_Model):
    # Where `watcher web` is reachable for subscribers ("https://watcher.example.org"): alerts then link to
    # its page for each change. Unset: alerts link only to the source.
    base_url: HttpUrl | None = None


class TopicsConfig(_Model):
    # A source's claim is stale, and counts neither for consensus nor as a disagreement, when it is dated
    # this much before the newest claim about the same fact.
    stale_after: Duration = timedelta(days=180)


class ChangesConfig(_Model):
    # Flap damping (watcher/changes.py): a change to a value the watch held within its last `flap_window`
    # snapshots (of the same entry) is held back as `flapping` until it has been seen on `confirm` more
    # fetches. 5 covers a page alternating between up to five versions: each alerts once at most, the first
    # time it appears. 0 turns damping off. A watch's own `flap_window` overrides it.
    flap_window: int = Field(default=5, ge=0, le=50)


class Settings(_Model):
    database_url: str = "sqlite:///var/watcher.db"
    data_dir: str = "var"
    web_token_env: str = Field(default="WATCHER_WEB_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$")
    # The daemon re-reads this file when it changes (and on SIGHUP either way).
    reload_on_change: bool = True
    # Processes that normalise and extract fetched pages: unset = one per core for `watcher check`, one per core
    # less one (at least one) for the daemon (`watcher run`); 0 = in the checking process.
    process_workers: int | None = Field(default=None, ge=0, le=64)
    # `watcher run` writes its health here every `health_interval` (read by `watcher status` and /healthz);
    # unset: next to the SQLite database, or <data_dir>/watcher.health.json (WATCHER_HEALTH_FILE overrides).
    health_file: str | None = None
    health_interval: Duration = timedelta(seconds=5)
    # How late a scheduler wakeup may be (past its expected time) before the watchdog restarts the scheduler;
    # an event loop that has not turned for this long makes the process exit with status 70 (see README).
    watchdog: Duration = timedelta(minutes=2)

    @field_validator("health_interval", "watchdog")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1:
            raise ValueError("must be at least 1s")
        return v


class Config(_Model):
    watcher: Settings = Settings()
    fetch: FetchConfig = FetchConfig()
    notify: NotifyConfig = NotifyConfig()
    redis: RedisConfig = RedisConfig()
    web: WebConfig = WebConfig()
    topics: TopicsConfig = TopicsConfig()
    changes: ChangesConfig = ChangesConfig()
    retention: RetentionConfig = RetentionConfig()
    watch: list[WatchConfig] = Field(default_factory=list)
    subscriber: list[SubscriberConfig] = Field(default_factory=list)
    source_path: str | None = Field(default=None, exclude=True)
    _watch_index: tuple[list[WatchConfig], dict[str, WatchConfig]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for what, items in (("watch", self.watch), ("subscriber", self.subscriber)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"two {what} entries are named {item.name!r}; names must be unique")
                seen.add(item.name)
        names = [w.name for w in self.watch]
        for sub in self.subscriber:
            for name in sub.watches:
                if name not in names:
                    raise ValueError(f"subscriber {sub.name!r}: watches names {name!r}, which is no watch"
                                     f"{did_you_mean(name, names)}")
        return self

    @property
    def database_url(self) -> str:
        """The database URL; WATCHER_DATABASE_URL in the environment overrides the file."""
        return os.environ.get("WATCHER_DATABASE_URL") or self.watcher.database_url

    def watch_by_name(self, name: str) -> WatchConfig:
        # Called for every check and every enqueued job: an index, not a scan of (up to 100k) watches.
        # Keyed by the list's identity so a model_copy with other watches builds its own.
        cached = self._watch_index
        if cached is None or cached[0] is not self.watch:
            cached = self._watch_index = (self.watch, {w.name: w for w in self.watch})
        try:
            return cached[1][name]
        except KeyError:
            raise ConfigError(f"no watch named {name!r} in {self.source_path}") from None

    def flap_window(self, watch: WatchConfig) -> int:
        """How many earlier snapshots a change is compared with for flap damping (0: no damping)."""
        return self.changes.flap_window if watch.flap_window is None else watch.flap_window

    def max_entries(self, watch: WatchConfig) -> int:
        """How many entries of a feed or listing the watch keeps (its newest)."""
        return self.fetch.max_entries if watch.max_entries is None else watch.max_entries

    def retention_for(self, name: str) -> RetentionConfig:
        """The retention of a watch: its own keys over `[retention]` (a watch gone from the config gets the
        global one, so its history is pruned too)."""
        try:
            own = self.watch_by_name(name).retention
        except ConfigError:
            own = None
        if own is None:
            return self.retention
        return RetentionConfig(
            keep_snapshots=self.retention.keep_snapshots if own.keep_snapshots is None else own.keep_snapshots,
            max_age=self.retention.max_age if own.max_age is None else own.max_age)

    def subscriber_by_name(self, name: str) -> SubscriberConfig:
        for s in self.subscriber:
            if s.name == name:
                return s
        raise ConfigError(f"no subscriber named {name!r} in {self.source_path}")


def did_you_mean(word: str, choices: Any) -> str:
    """"; did you mean 'topics'?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.casefold(), [str(c).casefold() for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def secret_from_env(var: str | None, what: str) -> str | None:
    """Read a secret from the environment variable the config names; never from the file."""
    if not var:
        return None
    from watcher.logs import remember_secret

    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{what}: environment variable {var} is not set")
    remember_secret(value)  # redacted from every log line and error from now on, whatever the variable's name
    return value


def check_secrets(config: Config, subscribers: list[SubscriberConfig] | None = None) -> None:
    """Refuse to start when a secret the config names is missing from the environment: found at send time
    it would fail every alert. One line naming the subscriber and the variable."""
    subs = config.subscriber if subscribers is None else subscribers
    for sub in subs:
        if sub.secret_env and not os.environ.get(sub.secret_env):
            raise ConfigError(f"subscriber {sub.name}: secret_env names {sub.secret_env}, which is not set in the "
                              "environment (set it, or remove secret_env)")
    smtp = config.notify.smtp
    mailed = [sub.name for sub in subs if sub.email]
    if smtp.password_env and mailed and not os.environ.get(smtp.password_env):
        raise ConfigError(f"subscriber {mailed[0]}: notify.smtp.password_env names {smtp.password_env}, which is not "
                          "set in the environment (set it, or remove password_env)")


def _loc(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as a config key, naming list items by their `name`."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            name = node[item].get("name") if item < len(node) and isinstance(node[item], dict) else None
            parts[-1] += f"[{item}]" + (f" ({name})" if name else "")
            node = node[item] if item < len(node) else None
        else:
            if str(item).startswith(("function-", "function_")):
                continue
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the config accepts at `loc` (a pydantic error location), for "did you mean" hints."""
    model: Any = Config
    for item in loc:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(item) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[WatchConfig]` or `TopicConfig | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the config; raise ConfigError naming file, key and problem."""
    p = Path(path or os.environ.get("WATCHER_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text: {e}") from e
    return parse_config(text, p)


def parse_config(text: str, path: str | os.PathLike[str]) -> Config:
    """Validate config text as `load_config` does (errors name `path`): also used to check an edit before
    it is written."""
    p = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: TOML syntax error: {e}") from e
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][-1])
                msg = f"unknown key {key!r}{did_you_mean(key, _keys_at(err['loc'][:-1]))}"
            lines.append(f"{p}: {_loc(data, err['loc'])}: {msg}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None
    return config.model_copy(update={"source_path": str(p)})
