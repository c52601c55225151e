"""The per-file record: one manifest.jsonl line, the same shape everywhere (CLI, S3 runs, API)."""

from __future__ import annotations

import heapq
import json
from typing import Any, Iterable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, field_validator

MANIFEST_NAME = "manifest.jsonl"
PARTS_FOLDER = "_manifest"        # sorted parts of a run in progress, merged into MANIFEST_NAME
PART_ROWS = 10_000
IN_PLACE_FOLDER = ".renamer-ray"  # under SRC: where `rename --in-place` keeps its manifest by default


class FileRecord(BaseModel):
    """What happened to one input file.

    ``source`` is where the input is (URI or path); ``name`` is the final file name with its extension; ``error`` is a sentence a person can act
    on (only when ``status`` is ``error``); ``raw`` is the model's text before the rules applied.
    ``style`` is the naming style ``name`` was written in (``naming/style.py``), present only when it
    is not the default (kebab-case, 60 characters, 10 words): ``apply`` checks a plan's names against it.
    ``relative`` is the source's path under the run's SRC and ``output`` the target's under DST (its
    folder, unless the run was ``--flat``, and ``name``); ``size`` and ``mtime`` are the source's when
    it was named, which tells a later run into the same DST whether it changed since. ``root``, on
    the records of an ``--in-place`` run, is its SRC: ``undo`` of a manifest kept elsewhere than
    ``SRC/.renamer-ray/`` moves nothing outside it (``trust.py``).
    """

    model_config = ConfigDict(extra="ignore")

    source: str
    original: str | None = None       # the name the user gave (uploads); absent for listed files
    relative: str | None = None
    target: str | None = None
    output: str | None = None
    name: str | None = None
    status: Literal["ok", "error"]
    error: str | None = None
    raw: str | None = None
    style: dict[str, Any] | None = None
    size: int | None = None
    mtime: float | None = None
    format: str | None = None         # the real format (Pillow's name), which the extension follows
    in_place: bool | None = None      # renamed where it was (rename --in-place), not copied: undo moves it back
    root: str | None = None           # in_place records: the tree the run renamed (SRC); undo moves nothing outside it

    @field_validator("style", mode="before")
    @classmethod
    def _style_from_json(cls, value):
        """A pipeline row carries the style as JSON text."""
        return json.loads(value) if isinstance(value, str) else value

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), ensure_ascii=False)


def dump_lines(records: Iterable[FileRecord]) -> str:
    return "".join(r.to_json() + "\n" for r in records)


def parse_lines(text: str) -> Iterator[FileRecord]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield FileRecord.model_validate_json(line)
            except ValueError as exc:
                raise ValueError(f"manifest line {number} is not a valid record: {exc}") from None


def merge_sorted(parts: Iterable[Iterable[str]]) -> Iterator[str]:
    """k-way merge of manifest parts, each sorted by source: memory is one line per part."""
    return heapq.merge(*parts, key=lambda line: json.loads(line)["source"])
