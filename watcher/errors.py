"""One error hierarchy for everything a user can meet (httpx style): catch WatcherError."""

from __future__ import annotations


class WatcherError(Exception):
    """Base of every error the watcher reports to a user; the message says what to do."""

    exit_code = 1


class ConfigError(WatcherError):
    """The configuration file is missing, malformed or invalid."""

    exit_code = 2


class StoreError(WatcherError):
    """The database cannot be reached or migrated."""

    exit_code = 3


class FetchError(WatcherError):
    """A fetch failed; `reason` is a short machine-readable cause (timeout, http-500, robots, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable with both arguments: it crosses from the processing workers to the checking process.
        return (self.__class__, (self.reason, str(self)))


class DocumentError(WatcherError):
    """A fetched body could not be turned into a document (malformed JSON, feed, binary, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable with both arguments: it crosses from the processing workers to the checking process.
        return (self.__class__, (self.reason, str(self)))


class NotifyError(WatcherError):
    """A delivery failed. `retryable` says whether the outbox should try again."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
