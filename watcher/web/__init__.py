"""The review site: topics, timelines (with a release-window chart), watches, events, alerts, snapshot
diffs, an Atom feed of changes and an iCalendar of release windows; a REST API under /api/v1 (web/api.py).

Server-rendered (Starlette + Jinja2, autoescaped), no JavaScript at all, a strict Content-Security-Policy,
and a bearer token when the site is reachable from other machines. The only writes — a watch's "recheck",
"pause" and "resume" buttons, plain HTML forms — need the token (so they are off when none is configured)
and a CSRF token tied to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from watcher.errors import WatcherError
from watcher.store import Store
from watcher.web.api import api_routes, error_response
from watcher.web.chart import release_chart
from watcher.web.feeds import atom_feed, release_calendar

HERE = Path(__file__).parent
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
TOKEN_COOKIE = "watcher_token"  # noqa: S105  (the cookie name, not a secret)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def topic_href(key: str) -> str:
    return "/topic/" + quote(key, safe="")


_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "xml"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters["topic_href"] = topic_href
_env.filters["urlquote"] = lambda v: quote(str(v), safe="")


def _page(name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=http_status)


class Guard(BaseHTTPMiddleware):
    """Security headers on every response; the token (header, cookie or ?token=) when one is set."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        set_cookie = False
        # /healthz is for probes (a service manager, a load balancer) that hold no token; it shows no secret.
        if self.token and request.url.path != "/healthz":
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token") or "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                response: Response = (
                    error_response(401, "token required", {"WWW-Authenticate": "Bearer"})
                    if request.url.path.startswith("/api/") else
                    PlainTextResponse("token required", status_code=401, headers={"WWW-Authenticate": "Bearer"}))
                return _secure(response)
            set_cookie = request.query_params.get("token") is not None
        response = await call_next(request)
        if set_cookie:
            response.set_cookie(TOKEN_COOKIE, self.token or "", httponly=True, samesite="strict")
        return _secure(response)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


CSRF_MAX_AGE = 12 * 3600
ACTIONS = {"recheck": "Recheck requested: the daemon checks this watch within a few seconds.",
           "pause": "Paused: the daemon stops checking this watch when it reloads the config (within seconds).",
           "resume": "Resumed: the daemon checks this watch again when it reloads the config (within seconds)."}


def csrf_token(secret: str, now: float | None = None) -> str:
    """A form token only the holder of the site's token can make: issue time and its HMAC under the token."""
    issued = str(int(time.time() if now is None else now))
    mac = hmac.new(secret.encode(), f"watcher-csrf|{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def csrf_valid(secret: str, value: str, now: float | None = None) -> bool:
    issued = value.partition(".")[0]
    if not issued.isdigit() or not 0 <= (time.time() if now is None else now) - int(issued) <= CSRF_MAX_AGE:
        return False
    return hmac.compare_digest(csrf_token(secret, int(issued)).encode(), value.encode())


def create_app(store: Store, *, token: str | None = None, stale_after: dt.timedelta | None = None,
               config_path: str | None = None, health_file: str | None = None,
               health_limits: tuple[float, float] = (45.0, 120.0)) -> Starlette:
    """The site over `store`. Handlers are plain functions: Starlette runs them in its thread pool, so
    the blocking database calls never stall the event loop. `stale_after`: `topics.stale_after`.
    `config_path` is the config file that the API and the pause/resume buttons edit (None: they answer
    that there is none). `health_file` is what `watcher run` writes its health to, served at /healthz;
    `health_limits` are (stale_after, late_after) of watcher.health.assess."""
    from watcher.review import NotFound, list_alerts, list_events, list_watches, snapshot_detail, watch_history
    from watcher.topic import DEFAULT_STALE_AFTER, UnknownTopic, list_topics, topic_key_of, topic_label, topic_view

    age = stale_after or DEFAULT_STALE_AFTER

    def index(request: Request) -> Response:
        with store.session() as s:
            topics, watches = list_topics(s, stale_after=age), list_watches(s)
            events = list_events(s, limit=15)
        return _page("index.html", topics=topics, watches=watches, events=events)

    def topic(request: Request) -> Response:
        with store.session() as s:
            view = topic_view(s, request.path_params["key"], stale_after=age)
            events = list_events(s, topic=view.key, limit=50)
        return _page("topic.html", view=view, chart=release_chart(view), events=events)

    def watches(request: Request) -> Response:
        with store.session() as s:
            return _page("watches.html", watches=list_watches(s), **forms())

    def forms() -> dict[str, Any]:
        """What the templates need for the action buttons: shown only when writes are possible."""
        return {"can_write": token is not None, "csrf": csrf_token(token) if token else ""}

    def watch(request: Request) -> Response:
        from watcher.rechecks import latest_request

        name = request.path_params["name"]
        done = request.query_params.get("done")
        with store.session() as s:
            return _page("watch.html", w=watch_history(s, name, limit=100), recheck=latest_request(s, name),
                         notice=ACTIONS.get(done or ""), **forms())

    async def watch_action(request: Request) -> Response:
        """POST /watch/{name}/{action} from the page's buttons: token (Guard), same origin, CSRF token."""
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ACTIONS:
            return _page("error.html", http_status=404, message=f"no action {action!r}")
        if token is None:
            return _page("error.html", http_status=403, heading="Read-only",
                         message="This site is read-only: start watcher web with a token (WATCHER_WEB_TOKEN) to "
                                 "pause, resume and recheck watches here.")
        # Defence in depth before the CSRF token: what the browser says about where the form came from.
        # (Origin is "null" under our no-referrer policy, so it only counts when it names another site.)
        origin = request.headers.get("origin")
        fetch_site = request.headers.get("sec-fetch-site")
        if (origin not in (None, "null", f"{request.url.scheme}://{request.url.netloc}")
                or fetch_site not in (None, "same-origin", "none")):
            return _page("error.html", http_status=403, heading="Refused",
                         message="This form came from another site; refused.")
        body = await request.body()
        fields = parse_qs(body[:4096].decode("latin-1"))
        if not csrf_valid(token, (fields.get("csrf") or [""])[0]):
            return _page("error.html", http_status=403, heading="Refused", message="This form has expired or did "
                         "not come from this site: reload the page and try again.")
        try:
            await run_in_threadpool(perform, name, action)
        except WatcherError as e:
            from watcher.logs import redact

            return _page("error.html", http_status=404 if isinstance(e, NotFound) else 400,
                         heading="Not found" if isinstance(e, NotFound) else "Not done", message=redact(str(e)))
        return RedirectResponse(f"/watch/{quote(name, safe='')}?done={action}", status_code=303)

    def perform(name: str, action: str) -> None:
        from watcher.config import load_config
        from watcher.configfile import ConfigFile
        from watcher.rechecks import request_check

        if config_path is None:
            raise WatcherError("this watcher web has no config file to edit (start it with -c FILE)")
        config = load_config(config_path)
        if all(w.name != name for w in config.watch):
            raise NotFound(f"no watch named {name!r} in {config_path}")
        if action == "recheck":
            request_check(store, name, by="web")
            return
        written = ConfigFile(config_path).set_enabled(name, action == "resume", actor="the web page")
        store.sync_watches(written.watch)

    def events(request: Request) -> Response:
        topic_key = request.query_params.get("topic") or None
        with store.session() as s:
            rows = list_events(s, topic=topic_key, limit=200)
        return _page("events.html", events=rows, topic=topic_key)

    def alerts(request: Request) -> Response:
        status = request.query_params.get("status") or None
        with store.session() as s:
            rows = list_alerts(s, status=status, limit=200)
        return _page("alerts.html", alerts=rows, status=status)

    def snapshot(request: Request) -> Response:
        with store.session() as s:
            detail = snapshot_detail(s, request.path_params["id"])
        return _page("snapshot.html", d=detail, diff_lines=(detail.diff or "").splitlines())

    def feed(request: Request) -> Response:
        key = request.path_params.get("key")
        with store.session() as s:
            label = None
            if key:
                key = topic_key_of(key)
                label = topic_label(s, key)
                if label is None:
                    raise UnknownTopic(f"no snapshot is about topic {key!r}")
            rows = list_events(s, topic=key, limit=100)
        body = atom_feed(_env, rows, base=str(request.base_url).rstrip("/"), topic=key, label=label,
                         now=dt.datetime.now(dt.UTC))
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    def calendar(request: Request) -> Response:
        with store.session() as s:
            body = release_calendar(list_topics(s, stale_after=age))
        return Response(body, media_type="text/calendar; charset=utf-8")

    def style(request: Request) -> Response:
        return FileResponse(HERE / "static" / "style.css", media_type="text/css")

    def healthz(request: Request) -> Response:
        """The daemon's health for probes: 200 when healthy, 503 when its health file is missing or stale
        or the database or job store is in an outage (the file, not the database: it answers when the
        database does not)."""
        from watcher.health import public_view, read_health_file

        data = read_health_file(health_file) if health_file else None
        healthy, view = public_view(data, stale_after=health_limits[0], late_after=health_limits[1])
        return JSONResponse(view, status_code=200 if healthy else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _page("error.html", http_status=404, message=str(exc))

    routes = [
        Route("/", index), Route("/topic/{key}", topic), Route("/topic/{key}/feed.atom", feed),
        Route("/watches", watches), Route("/watch/{name}", watch), Route("/events", events),
        Route("/alerts", alerts), Route("/snapshot/{id:int}", snapshot), Route("/feed.atom", feed),
        Route("/calendar.ics", calendar), Route("/static/style.css", style),
        Route("/watch/{name}/{action}", watch_action, methods=["POST"]), Route("/healthz", healthz),
        *api_routes(store, token=token, config_path=config_path, stale_after=age),
    ]
    handlers: dict[Any, Any] = {NotFound: not_found, UnknownTopic: not_found, WatcherError: not_found}
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=token)], exception_handlers=handlers)
