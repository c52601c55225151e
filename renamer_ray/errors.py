"""Saying an exception to a person in one line: the first line of its own words."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """The first non-empty line of the exception's text, stripped (a storage client's, the model
    hub's and Ray's errors run over several lines), or its type's name when it says nothing."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
