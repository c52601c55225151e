"""The one way the suite waits for something that happens in another process: poll a check."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], what: str, timeout: float = 300, *, every: float = 0.1,
               retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` seconds pass (an
    AssertionError naming ``what``). Exceptions in ``retry_on`` count as "not yet". The pause
    between calls is polling another process, not synchronising on time."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if result := check():
                return result
        except retry_on as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}"
                                 + (f" (last: {type(last).__name__}: {last})" if last else ""))
        time.sleep(every)
