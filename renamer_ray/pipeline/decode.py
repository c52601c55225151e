"""Stage: read each file's bytes, sniff its real format, read EXIF, decode and resize (CPU tasks)."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from renamer_ray.images import ImageError, decode
from renamer_ray.io.storage import Location, read_bytes
from renamer_ray.pipeline.claims import read_claim
from renamer_ray.pipeline.columns import DECODED, table


def _mtime_date(mtime: float | None) -> str | None:
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d") if mtime else None


def decode_batch(batch: pa.Table, *, source: Location, max_pixels: int, max_file_bytes: int,
                 resume_from: Location | None = None) -> pa.Table:
    """``resume_from``: the target of an interrupted attempt; files it already named are not read."""
    rows = batch.to_pylist()
    for row in rows:
        if row["skipped"]:
            continue
        if resume_from is not None and (claimed := read_claim(resume_from, row["relative"])):
            row.update(pinned=claimed["name"], format=claimed["format"], raw=claimed["raw"])
            continue
        try:
            if row["size"] > max_file_bytes:
                raise ImageError(f"file too large: {row['size']:,} bytes exceeds the {max_file_bytes:,}-byte limit")
            image = decode(read_bytes(source.join(row["relative"])), max_pixels=max_pixels)
        except ImageError as exc:
            row["error"] = str(exc)
            continue
        except OSError as exc:
            row["error"] = f"could not read the file: {exc}"
            continue
        meta = image.meta
        row.update(format=meta.format, date=meta.date or _mtime_date(row["mtime"]), camera=meta.camera,
                   width=image.width, height=image.height, rgb=image.rgb)
    return table(rows, DECODED)


# Half a CPU: decoding is partly I/O, and a different resource shape keeps Ray Data from fusing this
# stage into the model actors (the GPU must never wait on JPEG decoding).
DECODE_ARGS = dict(batch_format="pyarrow", num_cpus=0.5)
