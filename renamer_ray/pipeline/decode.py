"""Stage: read each file's bytes, sniff its real format, read EXIF, decode and resize (CPU tasks)."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from renamer_ray.images import ImageError, decode
from renamer_ray.io.storage import open_location, read_bytes, retrying
from renamer_ray.pipeline.claims import read_claim
from renamer_ray.pipeline.columns import DECODED, table
from renamer_ray.pipeline.progress import stopped_reasons


def _mtime_date(mtime: float | None) -> str | None:
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d") if mtime else None


def decode_batch(batch: pa.Table, *, s3: dict, max_pixels: int, max_file_bytes: int, progress=None,
                 max_decode_pixels: int = 40_000_000) -> pa.Table:
    """``s3``: region and endpoint_url for s3:// rows. A row marked ``resume`` whose name an
    interrupted attempt already claimed is not read at all, nor is a row of a stopped job
    (``progress``: the run's ProgressBoard, if any)."""
    rows = batch.to_pylist()
    stopped = stopped_reasons(progress)
    for row in rows:
        if row["skipped"]:
            continue
        if row["target_root"] in stopped:
            row["error"] = stopped[row["target_root"]]
            continue
        if row["resume"] and (claimed := retrying(read_claim, open_location(row["target_root"], **s3), row["relative"])):
            row.update(pinned=claimed["name"], format=claimed["format"], raw=claimed["raw"])
            continue
        try:
            if row["size"] > max_file_bytes:
                raise ImageError(f"file too large: {row['size']:,} bytes exceeds the {max_file_bytes:,}-byte limit")
            image = decode(read_bytes(open_location(row["source"], **s3)), max_pixels=max_pixels,
                           max_decode_pixels=max_decode_pixels)
        except ImageError as exc:
            row["error"] = str(exc)
            continue
        except FileNotFoundError:
            row["error"] = "could not read the file: it no longer exists (or is a dangling symbolic link)"
            continue
        except OSError as exc:  # after the storage client's retries: say that a later run may succeed
            row["error"] = f"could not read the file ({exc}); this looks like a storage error: running again may succeed"
            continue
        meta = image.meta
        row.update(format=meta.format, date=meta.date or _mtime_date(row["mtime"]), camera=meta.camera,
                   width=image.width, height=image.height, rgb=image.rgb)
    return table(rows, DECODED)


# Half a CPU: decoding is partly I/O, and a different resource shape keeps Ray Data from fusing this
# stage into the model actors (the GPU must never wait on JPEG decoding).
# Retries: a decode task whose process ends (a lost node, an OOM kill, a decoder that crashes or
# exits on some file) is run again at most DECODE_TASK_RETRIES times, then the run fails. Ray Data's
# default is to retry for ever, and a file that ends its process every time would hang the run.
DECODE_TASK_RETRIES = 3
DECODE_ARGS = dict(batch_format="pyarrow", num_cpus=0.5, max_retries=DECODE_TASK_RETRIES)


def decode_memory(max_decode_pixels: int) -> int:
    """Bytes one decode task may need (Ray's `memory` resource, so concurrency follows memory): the
    largest allowed image as RGBA, once decoded and once converted, plus the file and the result."""
    return 2 * 4 * max_decode_pixels + 256 * 1024 * 1024
