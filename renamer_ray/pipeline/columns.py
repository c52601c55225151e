"""Arrow schemas of the rows between stages, declared once so every block has the same types."""

from __future__ import annotations

import pyarrow as pa

_LISTED = [
    ("source", pa.string()),     # full URI/path of the input file, as listed
    ("relative", pa.string()),   # path under the source folder
    ("size", pa.int64()),
    ("mtime", pa.float64()),     # seconds since the epoch, or null
    ("index", pa.int64()),       # 1-based position in its folder, sorted by name ({index})
    ("skipped", pa.bool_()),     # not an image file (by extension): counted, not processed
    ("original", pa.string()),   # the name the user gave (uploads), else null: the source's name
    # What to do with it: one run may carry several jobs, each with its own output and wishes.
    ("target_root", pa.string()),  # output folder / S3 prefix URI
    ("prompt", pa.string()),     # the user's prompt, or null
    ("template", pa.string()),   # name template, e.g. "{subject}"
    ("resume", pa.bool_()),      # an earlier attempt into target_root was interrupted: look for claims
]
_FACTS = [
    ("format", pa.string()),     # real format sniffed from the bytes (Pillow's name)
    ("date", pa.string()),       # capture date YYYY-MM-DD (EXIF, else file modification time)
    ("camera", pa.string()),
    ("error", pa.string()),      # why this file failed, or null
    ("pinned", pa.string()),     # final name an interrupted attempt already gave it (see claims.py)
    ("raw", pa.string()),        # the model's answer before the rules (set by the model stage)
]

LISTED = pa.schema(_LISTED)
DECODED = pa.schema(_LISTED + _FACTS + [("width", pa.int32()), ("height", pa.int32()), ("rgb", pa.binary())])
ANSWERED = pa.schema(_LISTED + _FACTS)
STEMMED = pa.schema(_LISTED + _FACTS + [("stem", pa.string()), ("key", pa.string())])
RESULT = pa.schema([
    ("source", pa.string()), ("relative", pa.string()), ("original", pa.string()), ("target_root", pa.string()),
    ("format", pa.string()), ("target", pa.string()), ("name", pa.string()),
    ("status", pa.string()), ("error", pa.string()), ("raw", pa.string()), ("pinned", pa.string()),
])


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows → a table of exactly ``schema`` (extra keys dropped, missing ones null)."""
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
