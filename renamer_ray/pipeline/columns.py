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
    ("style", pa.string()),      # naming style as JSON (naming/style.py: case, limits, language), or null: the default
    ("resume", pa.bool_()),      # an earlier attempt into target_root was interrupted: look for claims
    ("flat", pa.bool_()),        # every output straight into target_root (else into relative's folder there)
    ("earlier", pa.string()),    # manifest of a finished earlier run into target_root (incremental), or null
    ("earlier_size", pa.int64()),  # its size: the workers' cache of it is keyed by it
    ("preview_to", pa.string()),  # where decode writes a small JPEG of it (service jobs), or null: none
]
_FACTS = [
    ("format", pa.string()),     # real format sniffed from the bytes (Pillow's name)
    ("date", pa.string()),       # capture date YYYY-MM-DD (EXIF, else file modification time)
    ("camera", pa.string()),
    ("error", pa.string()),      # why this file failed, or null
    ("pinned", pa.string()),     # final name an interrupted attempt (claims.py) or an earlier run (earlier.py) gave it
    ("kept", pa.bool_()),        # pinned by an earlier run's manifest: unchanged since, its copy is made
    ("raw", pa.string()),        # the model's answer before the rules (set by the model stage)
    ("node", pa.string()),       # the Ray node whose model actor gave ``raw`` (a run's own actors only)
    ("source_head", pa.string()),  # what the decode's read learnt of the source for its copy (S3: headers), or null
]

_PIXELS = [("width", pa.int32()), ("height", pa.int32()), ("rgb", pa.binary())]  # decoded RGB, resized
_STEM = [("stem", pa.string()), ("key", pa.string())]  # the name before de-duplication; its shuffle key

LISTED = pa.schema(_LISTED)                       # what the listing (or the driver) produces
ROW = pa.schema(_LISTED + _FACTS)                 # a listed file and what is known of it so far
DECODED = pa.schema(_LISTED + _FACTS + _PIXELS)   # ... plus its pixels, for the model
STEMMED = pa.schema(_LISTED + _FACTS + _STEM)
FACTS = tuple(name for name, _ in _FACTS)         # the column names of each part (what stages add)
PIXELS = tuple(name for name, _ in _PIXELS)
STEM = tuple(name for name, _ in _STEM)
RESULT = pa.schema([
    ("source", pa.string()), ("relative", pa.string()), ("original", pa.string()), ("target_root", pa.string()),
    ("size", pa.int64()), ("mtime", pa.float64()), ("kept", pa.bool_()),
    ("format", pa.string()), ("target", pa.string()), ("name", pa.string()),
    ("output", pa.string()),     # the target's path under target_root: its folder (unless flat) and name
    ("status", pa.string()), ("error", pa.string()), ("raw", pa.string()), ("pinned", pa.string()),
    ("style", pa.string()),  # on named rows of a non-default style: the manifest records it for `apply`
    ("node", pa.string()),   # who named it: counted per node in the run's summary, not in the manifest
    ("source_head", pa.string()),  # for its copy (see FACTS), not in the manifest
])


def table(rows: list[dict], schema: pa.Schema, *, drop: tuple[str, ...] = ()) -> pa.Table:
    """Rows → a table of exactly ``schema``. A key that is neither in the schema nor in ``drop`` (the
    columns a stage deliberately leaves behind) is a programming error, not a silent null."""
    allowed = set(schema.names) | set(drop)
    for row in rows:
        if unknown := row.keys() - allowed:
            raise ValueError(f"columns {sorted(unknown)} are not in the schema {schema.names}")
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)

