"""Per-key concurrency limits: at most N requests of one kind at once per caller (API key namespace)
in this API replica; one more is refused at once with 429, a ``Retry-After`` and a sentence, never
queued. One :class:`KeyedLimiter` per kind (chat completions, event streams) lives on
``app.state.services``; the routes take a slot through a dependency with ``yield`` (``deps.py``,
``routes/chat.py``), so the slot is given back when the response has been sent, however it ends:
a finished or dropped event stream, an error, a client that went away.

The count is per replica (Serve runs up to four API replicas): the limit bounds what one key can
hold of one replica's slots and memory, not an exact number across the service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException


class LimitReached(HTTPException):
    """429 with ``Retry-After``; FastAPI answers it as ``{"detail": message}`` (chat re-words it)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(429, message, headers={"Retry-After": str(retry_after)})
        self.message, self.retry_after = message, retry_after


class KeyedLimiter:
    """At most ``limit`` slots held at once per key. ``what`` names the requests ("chat completions")
    and ``setting`` the variable that sets the limit, for the refusal's sentence."""

    def __init__(self, limit: int, *, what: str, setting: str, retry_after: int = 1):
        if limit < 1:
            raise ValueError("a limit must be at least 1")
        self.limit, self.what, self.setting, self.retry_after = limit, what, setting, retry_after
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()   # async routes take slots on one event loop; sync code may too

    def held(self, key: str) -> int:
        """Slots ``key`` holds now."""
        with self._lock:
            return self._held.get(key, 0)

    def take(self, key: str) -> None:
        """Hold one slot for ``key``, or raise :class:`LimitReached` (nothing held) when it has all."""
        with self._lock:
            held = self._held.get(key, 0)
            if held >= self.limit:
                raise LimitReached(f"too many {self.what} at once: at most {self.limit} per API key ({self.setting}); "
                                   f"retry when one has finished (Retry-After: {self.retry_after} s)", self.retry_after)
            self._held[key] = held + 1

    def give_back(self, key: str) -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

    @contextmanager
    def slot(self, key: str) -> Iterator[None]:
        """One slot for ``key`` for the ``with`` block (:class:`LimitReached` when it has all)."""
        self.take(key)
        try:
            yield
        finally:
            self.give_back(key)
