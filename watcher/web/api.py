"""The REST API under `watcher web`: `/api/v1/...`, JSON in and out, described by `/api/v1/openapi.json`
(docs/api.md has examples).

Reads follow the site's rule (open on loopback without a token; the token otherwise). Writes — add, pause,
resume, delete, recheck — always need the token, as `Authorization: Bearer TOKEN`, even on loopback; with no
token configured the API is read-only. Writes edit the config file that `watcher web` was started with
(`watcher.configfile`: the same checked, atomic edits as the CLI), and the running daemon applies them by
reloading it; a recheck is a request row that the daemon picks up (`watcher.rechecks`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from watcher.errors import ConfigError, DocumentError, WatcherError
from watcher.store import Store

MAX_BODY = 64 * 1024
EVENTS_MAX = 1000


class NewWatch(BaseModel):
    """The body of `POST /api/v1/watches` (the options of `watcher add`)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="The page, post, feed or WordPress REST URL to watch.")
    name: str | None = Field(default=None, description="Watch name; default: from the URL's host and path.")
    kind: Literal["auto", "html", "wordpress", "feed", "browser"] = Field(
        default="auto", description="auto detects: a WordPress post becomes its REST URL, a feed a feed watch. "
                                    "feed on a page that links a feed watches that feed.")
    topic: str | None = Field(default=None, description='What it is about, e.g. "All of Us Are Dead S2".')
    interval: str | None = Field(default=None, description='How often, e.g. "6h" (default 6h).')
    cron: str | None = Field(default=None, description='A cron schedule instead, e.g. "17 */4 * * *".')
    jitter: str | None = Field(default=None, description='Random delay per run, e.g. "15m".')
    css: str | None = Field(default=None, description="Only this part of an HTML page (CSS selector).")
    xpath: str | None = Field(default=None, description="Only this part of an HTML page (XPath).")
    use_feed: bool = Field(default=False, description="Watch the feed the page links instead of the page.")
    fetch: bool = Field(default=True, description="Fetch once to detect and preview (false needs a kind).")
    dry_run: bool = Field(default=False, description="Detect and preview only; write nothing.")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _status_of(e: WatcherError) -> int:
    from watcher.configfile import UnknownWatch
    from watcher.manage import WatchExists
    from watcher.review import NotFound
    from watcher.topic import UnknownTopic

    if isinstance(e, UnknownWatch | NotFound | UnknownTopic):
        return 404
    if isinstance(e, WatchExists):
        return 409
    if isinstance(e, DocumentError):
        return 422
    return 400 if isinstance(e, ConfigError) else 500


Handler = Callable[[Request], Awaitable[Response]]


def api_routes(store: Store, *, token: str | None, config_path: str | None,
               stale_after: dt.timedelta | None = None) -> list[Route]:
    """The API's routes over `store`, editing the config file at `config_path` (None: read-only);
    `stale_after` as the web page's topics use it."""
    from watcher.topic import DEFAULT_STALE_AFTER

    age = stale_after or DEFAULT_STALE_AFTER
    from watcher.configfile import ConfigFile, UnknownWatch

    def guarded(handler: Handler, *, write: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if write:
                    _authorize_write(request, token)
                return await handler(request)
            except ApiError as e:
                return error_response(e.status, e.message, e.headers)
            except WatcherError as e:
                from watcher.logs import redact

                return error_response(_status_of(e), redact(str(e)))

        return endpoint

    def config_file() -> ConfigFile:
        if config_path is None:
            raise ApiError(503, "this watcher web has no config file to edit (start it with -c FILE)")
        return ConfigFile(config_path)

    def current_config() -> Any:
        from watcher.config import load_config

        return load_config(config_file().path)

    def watch_json(name: str) -> dict[str, Any]:
        from watcher.rechecks import latest_request
        from watcher.review import get_watch, watch_row

        with store.session() as s:
            return {**watch_row(get_watch(s, name)), "recheck": latest_request(s, name)}

    # ------------------------------------------------------------------ reads

    async def list_watches(request: Request) -> Response:
        from watcher.review import list_watches as rows

        def go() -> list[dict[str, Any]]:
            with store.session() as s:
                return rows(s)

        return JSONResponse({"watches": await run_in_threadpool(go)})

    async def get_watch(request: Request) -> Response:
        from watcher.rechecks import latest_request
        from watcher.review import watch_history

        name = request.path_params["name"]

        def go() -> dict[str, Any]:
            with store.session() as s:
                return {**watch_history(s, name, limit=20), "recheck": latest_request(s, name)}

        return JSONResponse(await run_in_threadpool(go))

    async def list_topics(request: Request) -> Response:
        from watcher.topic import list_topics as views

        def go() -> list[dict[str, Any]]:
            with store.session() as s:
                return [topic_summary(v) for v in views(s, stale_after=age)]

        return JSONResponse({"topics": await run_in_threadpool(go)})

    async def get_topic(request: Request) -> Response:
        from watcher.cli.diffcmd import topic_json
        from watcher.topic import topic_view

        def go() -> dict[str, Any]:
            with store.session() as s:
                return topic_json(topic_view(s, request.path_params["key"], stale_after=age))

        return JSONResponse(await run_in_threadpool(go))

    async def list_events(request: Request) -> Response:
        from watcher.review import list_events as rows

        q = request.query_params
        try:
            limit = int(q.get("limit") or 100)
        except ValueError:
            raise ApiError(400, "limit must be a number") from None
        if not 1 <= limit <= EVENTS_MAX:
            raise ApiError(400, f"limit must be between 1 and {EVENTS_MAX}")
        since = None
        if q.get("since"):
            try:
                since = dt.datetime.fromisoformat(q["since"])
            except ValueError:
                raise ApiError(400, "since must be an ISO date or date-time, e.g. 2026-01-31") from None

        def go() -> list[dict[str, Any]]:
            with store.session() as s:
                return rows(s, topic=q.get("topic") or None, watch=q.get("watch") or None, since=since,
                            types=tuple(q.getlist("type")), limit=limit)

        return JSONResponse({"events": await run_in_threadpool(go)})

    async def openapi(request: Request) -> Response:
        from watcher.web.openapi import openapi_document

        return JSONResponse(openapi_document())

    # ------------------------------------------------------------------ writes

    async def add_watch(request: Request) -> Response:
        from watcher.manage import propose

        body = await _json_body(request)
        try:
            new = NewWatch.model_validate(body)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}"
                                 for err in e.errors())
            raise ApiError(400, f"invalid watch: {problems}") from None
        if new.css and new.xpath:
            raise ApiError(400, "give css or xpath, not both")
        scope = {"css": new.css} if new.css else {"xpath": new.xpath} if new.xpath else None

        def go() -> tuple[dict[str, Any], bool]:
            cfile = config_file()
            config = current_config()
            proposal = propose(new.url, config, name=new.name, kind=new.kind, topic=new.topic,
                               interval=None if new.cron else (new.interval or "6h"), cron=new.cron,
                               jitter=new.jitter, scope=scope, use_feed=new.use_feed, fetch=new.fetch)
            if new.dry_run:
                return proposal.to_json(), False
            written = cfile.add_watches([proposal.entry], actor="the API")
            store.sync_watches(written.watch)
            return proposal.to_json(), True

        data, written = await run_in_threadpool(go)
        return JSONResponse({**data, "written": written}, status_code=201 if written else 200)

    def set_enabled(enabled: bool) -> Handler:
        async def handler(request: Request) -> Response:
            name = request.path_params["name"]

            def go() -> dict[str, Any]:
                before = current_config()
                changed = _has(before, name) and before.watch_by_name(name).enabled != enabled
                written = config_file().set_enabled(name, enabled, actor="the API")
                store.sync_watches(written.watch)
                return {"watch": watch_json(name), "changed": changed}

            return JSONResponse(await run_in_threadpool(go))

        return handler

    async def delete_watch(request: Request) -> Response:
        name = request.path_params["name"]

        def go() -> dict[str, Any]:
            written = config_file().remove_watch(name)
            store.sync_watches(written.watch)
            return {"removed": name}

        return JSONResponse(await run_in_threadpool(go))

    async def recheck(request: Request) -> Response:
        from watcher.rechecks import request_check

        name = request.path_params["name"]

        def go() -> tuple[dict[str, Any], bool]:
            if not _has(current_config(), name):
                raise UnknownWatch(f"no watch named {name!r} in the config")
            return request_check(store, name, by="api")

        row, created = await run_in_threadpool(go)
        return JSONResponse({"request": row, "created": created}, status_code=202)

    watch_path = "/api/v1/watches/{name}"
    return [
        Route("/api/v1/openapi.json", guarded(openapi)),
        Route("/api/v1/watches", guarded(list_watches), methods=["GET"]),
        Route("/api/v1/watches", guarded(add_watch, write=True), methods=["POST"]),
        Route(watch_path, guarded(get_watch), methods=["GET"]),
        Route(watch_path, guarded(delete_watch, write=True), methods=["DELETE"]),
        Route(watch_path + "/pause", guarded(set_enabled(False), write=True), methods=["POST"]),
        Route(watch_path + "/resume", guarded(set_enabled(True), write=True), methods=["POST"]),
        Route(watch_path + "/recheck", guarded(recheck, write=True), methods=["POST"]),
        Route("/api/v1/topics", guarded(list_topics)),
        Route("/api/v1/topics/{key}", guarded(get_topic)),
        Route("/api/v1/events", guarded(list_events)),
    ]


def _has(config: Any, name: str) -> bool:
    return any(w.name == name for w in config.watch)


def _authorize_write(request: Request, token: str | None) -> None:
    """Writes need the token in the Authorization header: not a cookie a browser would attach by itself,
    and not a query string that ends up in logs."""
    if token is None:
        raise ApiError(403, "the API is read-only: writes need a token; start watcher web with the variable "
                            "named by watcher.web_token_env (default WATCHER_WEB_TOKEN) set")
    given = request.headers.get("authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        raise ApiError(401, "writes need the token as 'Authorization: Bearer TOKEN'",
                       {"WWW-Authenticate": "Bearer"})


async def _json_body(request: Request) -> Any:
    if not request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None


def topic_summary(view: Any) -> dict[str, Any]:
    """A topic in a list: its current value per fact, where the sources disagree; claims are at
    /api/v1/topics/{key}."""
    return {"topic": view.key, "label": view.label, "sources": view.sources(),
            "facts": [{"kind": li.kind, "subject": li.subject,
                       "current": li.current.display if li.current else None,
                       "source": li.current.source if li.current else None,
                       "disagreement": li.disagreement or None} for li in view.lines]}
