"""The OpenAPI 3.1 description of the REST API, served at `/api/v1/openapi.json` (docs/api.md is the prose).

The request body schema comes from the pydantic model the API validates with, so the two cannot drift; the
tests check every route is described and that real responses match their schemas.
"""

from __future__ import annotations

from typing import Any

_NULL_STR = {"type": ["string", "null"]}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid request", 401: "Token missing or wrong", 403: "Writes are disabled (no token configured)",
            404: "No such watch or topic", 409: "Name taken or URL already watched", 413: "Body too large",
            415: "Body is not JSON", 422: "The URL could not be read", 503: "No config file to edit"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Watch name"}]
_WRITE = [{"bearerAuth": []}]


def _schemas() -> dict[str, Any]:
    from watcher.web.api import NewWatch

    check_request = _obj(
        ["id", "watch", "state", "requested_at"], id={"type": "integer"}, watch={"type": "string"},
        state={"enum": ["pending", "running", "done", "expired"],
               "description": "pending until the daemon claims it (it polls every 2 s), running, then done"},
        requested_by=_NULL_STR, requested_at={"type": "string", "format": "date-time"},
        started_at=_NULL_TIME, finished_at=_NULL_TIME,
        outcome={"type": ["string", "null"], "description": "baseline (first version stored), changed, unchanged, "
                                                                     "not_modified, failed, skipped"},
        error=_NULL_STR)
    watch = _obj(
        ["name", "kind", "url", "enabled", "status", "failures"], name={"type": "string"}, kind={"type": "string"},
        url={"type": "string"}, enabled={"type": "boolean", "description": "false when paused"},
        topic=_NULL_STR, schedule=_NULL_STR, last_check=_NULL_TIME,
        status={"type": ["string", "null"], "description": "outcome of the last check"},
        failures={"type": "integer"}, last_error=_NULL_STR, backoff_until=_NULL_TIME,
        recheck={"anyOf": [_ref("CheckRequest"), {"type": "null"}]})
    watch_detail = {"allOf": [_ref("Watch"), _obj(
        ["counts", "checks", "snapshots"], counts={"type": "object", "additionalProperties": {"type": "integer"},
                                                  "description": "checks by outcome (repeats included)"},
        checks={"type": "array", "items": _obj(
            ["id", "at", "outcome"], at={"type": "string"}, outcome={"type": "string"},
            id={"type": ["integer", "null"], "description": "null for the run of quiet checks still going on"},
            http_status={"type": ["integer", "null"]}, duration_ms={"type": ["integer", "null"]}, reason=_NULL_STR,
            error=_NULL_STR, snapshot_id={"type": ["integer", "null"]},
            repeats={"type": "integer", "minimum": 1,
                     "description": "checks the row stands for: consecutive unchanged (or not_modified) checks with "
                                    "the same HTTP status share one row, from `at` (the first) to `last_at`"},
            last_at={"type": "string", "description": "when the latest of the row's checks was made (= `at` for one)"},
            label={"type": "string",
                   "description": "the outcome as history shows it: \"unchanged ×12 (last 14:05)\""})},
        snapshots={"type": "array", "items": _obj(
            ["id", "fetched_at", "url"], id={"type": "integer"}, fetched_at={"type": "string"},
            url={"type": "string"}, title=_NULL_STR, entry={"type": "string"}, topic=_NULL_STR,
            topic_label=_NULL_STR, published=_NULL_STR, content_hash={"type": "string"})})]}
    entry = _obj(
        ["name", "url", "kind"], name={"type": "string"}, url={"type": "string"},
        kind={"enum": ["html", "wordpress", "feed", "browser"]},
        topic=_obj(["work"], work={"type": "string"}, season={"type": "integer"}),
        interval={"type": "string"}, cron={"type": "string"}, jitter={"type": "string"},
        scope={"type": "object", "properties": {"css": {"type": "string"}, "xpath": {"type": "string"}}},
        enabled={"type": "boolean"})
    proposal = _obj(
        ["watch", "detected", "given_url", "fetched", "documents", "preview", "written"],
        watch=_ref("WatchEntry"), detected={"type": "string", "description": "what the URL turned out to be"},
        given_url={"type": "string"},
        offered_feeds={"type": "array", "items": _obj(["url"], url={"type": "string"}, title=_NULL_STR,
                                                      type={"type": "string"})},
        fetched={"type": "boolean"}, http_status={"type": ["integer", "null"]}, documents={"type": "integer"},
        preview={"type": "array", "description": "per document (the first 5): what `watcher extract --json` "
                                                 "prints for it (docs/api.md), or its document and an error",
                 "items": _obj(["document"], document=_obj(["url"], url={"type": "string"}, title=_NULL_STR),
                               work=_NULL_STR, season={"type": ["integer", "null"]}, facts={"type": "object"},
                               error={"type": "string"})},
        written={"type": "boolean"})
    event = _obj(
        ["id", "event_id", "type", "detected_at", "summary"], id={"type": "integer"},
        event_id={"type": "string", "description": "stable id (as in webhooks)"}, type={"type": "string"},
        subject={"type": "string"}, topic=_NULL_STR, topic_label=_NULL_STR, watch=_NULL_STR, state={"type": "string"},
        detected_at={"type": "string", "format": "date-time"}, summary={"type": "string"}, old={}, new={},
        evidence=_NULL_STR, confidence={"type": "number"}, source_url=_NULL_STR,
        snapshot_id={"type": ["integer", "null"]})
    claim = _obj(["watch", "source", "display"], watch={"type": "string"}, source={"type": "string"}, value={},
                 display={"type": "string"}, published=_NULL_STR, fetched_at={"type": "string"},
                 evidence={"type": "string"}, confidence={"type": "number"}, snapshot_id={"type": "integer"},
                 url={"type": "string"})
    topic = _obj(["topic", "label", "sources", "facts"], topic={"type": "string"}, label={"type": "string"},
                 sources={"type": "array", "items": {"type": "string"}},
                 facts={"type": "array", "items": _obj(
                     ["kind", "claims"], kind={"type": "string"}, subject={"type": "string"},
                     current={"anyOf": [_ref("Claim"), {"type": "null"}]},
                     disagreement={"type": "object", "additionalProperties": {"type": "string"}},
                     claims={"type": "array", "items": _ref("Claim")})})
    topic_summary = _obj(["topic", "label", "sources", "facts"], topic={"type": "string"}, label={"type": "string"},
                         sources={"type": "array", "items": {"type": "string"}},
                         facts={"type": "array", "items": _obj(
                             ["kind", "current"], kind={"type": "string"}, subject={"type": "string"},
                             current=_NULL_STR, source=_NULL_STR,
                             disagreement={"type": ["object", "null"],
                                           "additionalProperties": {"type": "string"}})})
    return {"Error": _obj(["error"], error={"type": "string"}), "Watch": watch, "WatchDetail": watch_detail,
            "CheckRequest": check_request, "NewWatch": NewWatch.model_json_schema(), "WatchEntry": entry,
            "Proposal": proposal, "Event": event, "Claim": claim, "Topic": topic, "TopicSummary": topic_summary}


def openapi_document() -> dict[str, Any]:
    watches = _obj(["watches"], watches={"type": "array", "items": _ref("Watch")})
    changed = _obj(["watch", "changed"], watch=_ref("Watch"),
                   changed={"type": "boolean", "description": "false when it already was in that state"})
    paths = {
        "/api/v1/watches": {
            "get": {"summary": "List watches with their last check", "operationId": "listWatches",
                    "responses": {"200": _json(watches, "The watches, by name")}},
            "post": {"summary": "Add a watch (as `watcher add`): detect, fetch once, preview, write the config",
                     "operationId": "addWatch", "security": _WRITE,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewWatch")}}},
                     "responses": {"201": _json(_ref("Proposal"), "Added; the daemon applies it within seconds"),
                                   "200": _json(_ref("Proposal"), "dry_run: what would be added"),
                                   **_errors(400, 401, 403, 409, 413, 415, 422, 503)}},
        },
        "/api/v1/watches/{name}": {
            "parameters": _NAME,
            "get": {"summary": "A watch with its latest checks, snapshots and recheck", "operationId": "getWatch",
                    "responses": {"200": _json(_ref("WatchDetail"), "The watch"), **_errors(404)}},
            "delete": {"summary": "Remove a watch from the config (its history stays)", "operationId": "deleteWatch",
                       "security": _WRITE,
                       "responses": {"200": _json(_obj(["removed"], removed={"type": "string"}), "Removed"),
                                     **_errors(401, 403, 404, 503)}},
        },
        "/api/v1/watches/{name}/pause": {
            "parameters": _NAME,
            "post": {"summary": "Stop checking a watch (`enabled = false`)", "operationId": "pauseWatch",
                     "security": _WRITE, "responses": {"200": _json(changed, "Paused"),
                                                       **_errors(401, 403, 404, 503)}}},
        "/api/v1/watches/{name}/resume": {
            "parameters": _NAME,
            "post": {"summary": "Check a paused watch again", "operationId": "resumeWatch", "security": _WRITE,
                     "responses": {"200": _json(changed, "Resumed"), **_errors(401, 403, 404, 503)}}},
        "/api/v1/watches/{name}/recheck": {
            "parameters": _NAME,
            "post": {"summary": "Ask the running daemon to check the watch now", "operationId": "recheckWatch",
                     "security": _WRITE,
                     "responses": {"202": _json(_obj(["request", "created"], request=_ref("CheckRequest"),
                                                     created={"type": "boolean", "description":
                                                              "false: a request was already waiting; that one "
                                                              "is returned"}),
                                                "Queued; poll GET /api/v1/watches/{name} for its outcome"),
                                   **_errors(401, 403, 404, 503)}}},
        "/api/v1/topics": {
            "get": {"summary": "Topics with their current facts", "operationId": "listTopics",
                    "responses": {"200": _json(_obj(["topics"], topics={"type": "array",
                                                                        "items": _ref("TopicSummary")}), "Topics")}}},
        "/api/v1/topics/{key}": {
            "parameters": [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "'all of us are dead#2' or 'All of Us Are Dead S2'"}],
            "get": {"summary": "One topic: every claim per fact, by source", "operationId": "getTopic",
                    "responses": {"200": _json(_ref("Topic"), "The topic"), **_errors(404)}}},
        "/api/v1/events": {
            "get": {"summary": "Change events, newest first", "operationId": "listEvents",
                    "parameters": [
                        {"name": "topic", "in": "query", "schema": {"type": "string"}},
                        {"name": "watch", "in": "query", "schema": {"type": "string"}},
                        {"name": "since", "in": "query", "schema": {"type": "string"},
                         "description": "ISO date or date-time"},
                        {"name": "type", "in": "query", "schema": {"type": "array", "items": {"type": "string"}},
                         "style": "form", "explode": True, "description": "repeat for several types"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                    "maximum": 1000, "default": 100}}],
                    "responses": {"200": _json(_obj(["events"], events={"type": "array", "items": _ref("Event")}),
                                               "Events"), **_errors(400)}}},
        "/api/v1/openapi.json": {
            "get": {"summary": "This description", "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "watcher API", "version": "1",
                 "description": "Watches, topics and change events of a watcher installation. Reads need the "
                                "token only when the site has one; writes always need it. See docs/api.md."},
        "paths": paths,
        "components": {"schemas": _schemas(),
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                          "description": "the value of WATCHER_WEB_TOKEN"}}},
        "security": [{}, {"bearerAuth": []}],
    }
