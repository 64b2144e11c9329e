"""Editing the config file in place: add, pause, resume and remove watches, keeping its comments and layout.

Every edit takes a lock, reads the file as it is now, changes the text, validates the whole result with the
rules `load_config` applies, and replaces the file atomically (temporary file, fsync, rename), so a daemon
that reloads on change never reads half a file. An edit that would make the config invalid is refused and
the file stays as it was.

Edits are made on the text, next to the table they concern (a new watch after the last watch, `enabled =
false` among the watch's own keys), and checked against tomlkit's structural edit of the same document; when
the text edit cannot be placed safely (e.g. watches written as an inline array), tomlkit's rendering is used.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions

from watcher.config import Config, parse_config
from watcher.errors import ConfigError

NEW_CONFIG = """\
# watcher configuration (created by `{command}`; see README.md for every setting).
# Secrets never live here: name the environment variable that holds them (password_env, secret_env).

[watcher]
database_url = "sqlite:///var/watcher.db"   # WATCHER_DATABASE_URL overrides
"""

_WATCH_HEADER = re.compile(r"^\s*\[\[\s*watch\s*\]\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"""^\s*\[\[?\s*[A-Za-z0-9_."' -]+\s*\]\]?\s*(#.*)?$""")


class UnknownWatch(ConfigError):
    """The config file has no watch of that name."""


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- locating a watch in the text


@dataclass(frozen=True)
class _Span:
    header: int  # line index of its [[watch]] header
    content_end: int  # one past its last key line (trailing comments and blank lines excluded)


def _watch_items(doc: tomlkit.TOMLDocument) -> list[Any]:
    watches = doc.get("watch")
    if watches is None:
        return []
    return list(watches)


def _find(doc: tomlkit.TOMLDocument, name: str) -> Any | None:
    return next((w for w in _watch_items(doc) if w.get("name") == name), None)


def _span(text: str, name: str) -> _Span | None:
    """Where the watch `name` sits in `text`, found by marking its name and rendering the document again
    (tomlkit renders untouched parts byte for byte, so line numbers match)."""
    doc = tomlkit.parse(text)
    table = _find(doc, name)
    if table is None or not isinstance(table, tomlkit.items.Table):
        return None
    marker = f"watcher-edit-marker-{os.urandom(8).hex()}"
    table["name"] = marker
    lines = tomlkit.dumps(doc).splitlines()
    at = next((i for i, line in enumerate(lines) if marker in line), None)
    if at is None:
        return None
    header = next((i for i in range(at, -1, -1) if _WATCH_HEADER.match(lines[i])), None)
    if header is None:
        return None
    end = next((i for i in range(at + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
    content_end = header + 1
    for i in range(header + 1, end):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            content_end = i + 1
    return _Span(header, content_end)


def _checked(text: str, new_text: str | None, fallback: Callable[[tomlkit.TOMLDocument], None]) -> str:
    """`new_text` if it means exactly what the structural edit `fallback` means; else tomlkit's rendering."""
    doc = tomlkit.parse(text)
    fallback(doc)
    try:
        if new_text is not None and tomllib.loads(new_text) == tomllib.loads(tomlkit.dumps(doc)):
            return new_text
    except tomllib.TOMLDecodeError:
        pass
    return tomlkit.dumps(doc)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# --------------------------------------------------------------------------- the edits (text -> text)


def _clean(entry: dict[str, Any]) -> dict[str, Any]:
    """Without None values, at any depth (TOML has no null)."""
    return {k: _clean(v) if isinstance(v, dict) else v for k, v in entry.items() if v is not None}


def render_watch(entry: dict[str, Any], comment: str | None = None) -> str:
    """One `[[watch]]` table as TOML text (nested dicts as inline tables, as the sample config writes them)."""
    table = tomlkit.table()
    for key, value in _clean(entry).items():
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            table.add(key, inline)
        else:
            table.add(key, value)
    if comment:
        table.comment(comment)
    doc = tomlkit.document()
    aot = tomlkit.aot()
    aot.append(table)
    doc.add("watch", aot)
    return tomlkit.dumps(doc).lstrip("\n")


def add_watches_text(text: str, entries: list[dict[str, Any]], comment: str | None = None) -> str:
    """Append watches after the last existing watch (before any comments that follow it)."""
    if not entries:
        return text
    names = [w.get("name") for w in _watch_items(tomlkit.parse(text))]
    block = "".join("\n" + render_watch(e, comment) for e in entries)
    lines = _lines(text)
    span = _span(text, names[-1]) if names else None
    if span is not None:
        at = span.content_end
        new_text = "".join(lines[:at]) + block + "".join(lines[at:])
    else:
        new_text = text + ("" if not text or text.endswith("\n") else "\n") + block

    def structural(doc: tomlkit.TOMLDocument) -> None:
        if "watch" not in doc:
            doc.add("watch", tomlkit.aot())
        watches = doc["watch"]
        for e in entries:
            if isinstance(watches, tomlkit.items.AoT):
                watches.append(tomlkit.parse(render_watch(e))["watch"][0])
            else:  # `watch = [{...}, ...]`: an inline table in the array
                inline = tomlkit.inline_table()
                inline.update(_clean(e))
                watches.append(inline)

    return _checked(text, new_text, structural)


def set_enabled_text(text: str, name: str, enabled: bool, *, note: str | None = None) -> str:
    """Pause (`enabled = false`, with a dated comment) or resume (the key removed: enabled is the default)."""
    doc = tomlkit.parse(text)
    table = _find(doc, name)
    if table is None:
        raise UnknownWatch(f"no watch named {name!r} in the config")
    current = bool(table.get("enabled", True))
    if current == enabled:
        return text

    def structural(d: tomlkit.TOMLDocument) -> None:
        t = _find(d, name)
        if enabled:
            del t["enabled"]
        else:
            t["enabled"] = False

    if "enabled" in table:
        if enabled:
            del table["enabled"]
        else:
            table["enabled"] = False
        return _checked(text, tomlkit.dumps(doc), structural)
    span = _span(text, name)
    if span is None:
        return _checked(text, None, structural)
    lines = _lines(text)
    if span.content_end and not lines[span.content_end - 1].endswith("\n"):
        lines[span.content_end - 1] += "\n"
    line = "enabled = false" + (f"  # {note}" if note else "") + "\n"
    new_text = "".join(lines[:span.content_end]) + line + "".join(lines[span.content_end:])
    return _checked(text, new_text, structural)


def remove_watch_text(text: str, name: str) -> str:
    """Delete the watch's table: its header and keys. Comments around it are the user's and are kept."""
    doc = tomlkit.parse(text)
    if _find(doc, name) is None:
        raise UnknownWatch(f"no watch named {name!r} in the config")

    def structural(d: tomlkit.TOMLDocument) -> None:
        watches = d["watch"]
        index = next(i for i, w in enumerate(watches) if w.get("name") == name)
        del watches[index]
        if not len(watches):
            del d["watch"]

    span = _span(text, name)
    if span is None:
        return _checked(text, None, structural)
    lines = _lines(text)
    before, after = lines[:span.header], lines[span.content_end:]
    # One blank line where the table was, not two.
    if before and not before[-1].strip() and after and not after[0].strip():
        after = after[1:]
    return _checked(text, "".join(before + after), structural)


# --------------------------------------------------------------------------- the file


class ConfigFile:
    """The config file on disk, edited under a lock and replaced atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # Edit the file a symlink points at, not the link (configs often live behind one in /etc).
        self.path = Path(path).resolve() if Path(path).is_symlink() else Path(path)

    def __repr__(self) -> str:
        return f"ConfigFile({self.path})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the file's directory: writers (CLI, web, API) take turns, and no lock file
        is left behind."""
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot open its directory: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{self.path}: cannot read config: {getattr(e, 'strerror', None) or e}") from e

    def edit(self, change: Callable[[str], str], *, create: str | None = None) -> Config:
        """Apply `change` (old text -> new text) under the lock; validate; write atomically; return the new
        Config. With `create`, a missing file starts from a minimal config naming that command."""
        with self._locked():
            try:
                text = self.read()
            except FileNotFoundError:
                if create is None:
                    raise ConfigError(f"{self.path}: no such config file") from None
                text = NEW_CONFIG.format(command=create)
            try:
                new_text = change(text)
            except tomlkit.exceptions.TOMLKitError as e:
                raise ConfigError(f"{self.path}: cannot edit: {e}") from e
            config = parse_config(new_text, self.path)
            if new_text != text:
                self._write(new_text)
            return config

    def _write(self, text: str) -> None:
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            mode = self.path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot write next to it: {e.strerror or e}") from e
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # ------------------------------------------------------------------ operations

    def add_watches(self, entries: list[dict[str, Any]], *, actor: str = "`watcher add`") -> Config:
        """Append watches (a missing file is created); `actor` is named in a comment on each header."""
        return self.edit(lambda text: add_watches_text(text, entries, f"added by {actor}, {_today()}"),
                         create=actor.strip("`"))

    def set_enabled(self, name: str, enabled: bool, *, actor: str = "`watcher pause`") -> Config:
        return self.edit(lambda text: set_enabled_text(text, name, enabled, note=f"paused by {actor}, {_today()}"))

    def remove_watch(self, name: str) -> Config:
        return self.edit(lambda text: remove_watch_text(text, name))
