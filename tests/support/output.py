"""What a command printed, as a test reads it."""

from __future__ import annotations


def said(stderr: str) -> list[str]:
    """stderr's lines but the one every command starts with: which config files it read."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("config: ")]
