"""Memory housekeeping shared by the daemon's checking process and its processing workers (kept free of heavy
imports: a worker imports it)."""

from __future__ import annotations

from typing import Any


def release_memory() -> None:
    """Give memory freed by a burst of start-up work (loading and syncing thousands of watches) back to the
    system: collect the cycles it left (ORM objects), then ask glibc to return its free heap pages
    (`malloc_trim`; about 5 MB at 10,000 watches). Elsewhere than on glibc only the collection runs."""
    import ctypes
    import gc

    gc.collect()
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
        except (OSError, AttributeError):  # not glibc (musl, macOS)
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None
M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_arenas(arenas: int = 2) -> None:
    """At most `arenas` glibc malloc arenas from now on (what MALLOC_ARENA_MAX=2 does, set from the program:
    the variable is read only as a process starts). glibc gives each thread that contends for the heap an
    arena of its own, up to 8 per core, and free memory in one arena serves no other; the daemon's threads
    (reactor, scheduler, database, health) allocate little, so sharing costs nothing measurable, while each
    arena holds some megabytes of freed memory. Not glibc: nothing."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass
