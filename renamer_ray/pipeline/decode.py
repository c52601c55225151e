"""Stage: read each file's bytes, sniff its real format, read EXIF, decode and resize (CPU tasks)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from renamer_ray.images import DecodedImage, ImageError, decode
from renamer_ray.images.preview import PREVIEW_CACHE_CONTROL, PREVIEW_CONTENT_TYPE, make_preview
from renamer_ray.io.storage import StorageConfig, is_link, open_location, read_object, write_bytes
from renamer_ray.pipeline.columns import DECODED, PIXELS
from renamer_ray.pipeline.progress import stop_rows
from renamer_ray.pipeline.rows import STATE, is_open
from renamer_ray.pipeline.stage import Stage


DECODE_CPUS = 0.5  # per decode task where the model runs on the CPU too (see decode_cpus)
log = logging.getLogger(__name__)


def _mtime_date(mtime: float | None) -> str | None:
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d") if mtime else None


class Decode(Stage):
    """ROW → DECODED: read each open row's bytes, sniff the real format, read EXIF, decode and resize
    to ``max_pixels`` (a file that cannot be read or decoded gets its reason as ``error``). Rows of a
    job the run's ``progress`` board says to stop are not read. A row with ``preview_to`` (the
    service's) gets a small JPEG of its pixels written there (``images/preview.py``); a preview that
    cannot be made or written is left out, and the file is named all the same."""

    reads = (*STATE, "target_root", "source", "size", "mtime", "preview_to")
    adds = PIXELS
    output = DECODED

    def __init__(self, storage: StorageConfig, *, max_pixels: int, max_file_bytes: int,
                 max_decode_pixels: int = 40_000_000, progress=None, min_pixels: int | None = None,
                 cpus: float = DECODE_CPUS):
        """``min_pixels`` (the model's lower bound): decode straight onto the model's patch grid.
        ``cpus`` per task (``decode_cpus``)."""
        self.storage, self.max_pixels, self.max_file_bytes = storage, max_pixels, max_file_bytes
        self.min_pixels, self.cpus = min_pixels, cpus
        self.max_decode_pixels, self.progress = max_decode_pixels, progress

    def rows(self, rows: list[dict]) -> list[dict]:
        stop_rows(rows, self.progress)
        for row in filter(is_open, rows):
            self._decode(row)
        return rows

    def _decode(self, row: dict) -> None:
        if is_link(row["source"]):  # read through, it could hand any file of the user's to the model and to DST
            row["error"] = "a symbolic link: not followed (it could lead outside the folder being renamed)"
            return
        try:
            if row["size"] > self.max_file_bytes:
                raise ImageError(f"file too large: {row['size']:,} bytes exceeds the {self.max_file_bytes:,}-byte limit")
            data, row["source_head"] = read_object(open_location(row["source"], self.storage))
            image = decode(data, max_pixels=self.max_pixels, min_pixels=self.min_pixels,
                           max_decode_pixels=self.max_decode_pixels)
        except ImageError as exc:
            row["error"] = str(exc)
            return
        except FileNotFoundError:
            row["error"] = "could not read the file: it no longer exists (or is a dangling symbolic link)"
            return
        except OSError as exc:  # after the storage client's retries: say that a later run may succeed
            row["error"] = f"could not read the file ({exc}); this looks like a storage error: running again may succeed"
            return
        meta = image.meta
        row.update(format=meta.format, date=meta.date or _mtime_date(row["mtime"]), camera=meta.camera,
                   width=image.width, height=image.height, rgb=image.rgb)
        if row["preview_to"]:
            self._preview(image, row["preview_to"])

    def _preview(self, image: DecodedImage, uri: str) -> None:
        """Write the preview of ``image`` to ``uri``. Whatever goes wrong (encoding, storage) costs
        only the preview: logged, never the file's failure."""
        try:
            if (preview := make_preview(image)) is None:
                log.warning("no preview for %s: over the size bound at every quality", uri)
                return
            write_bytes(open_location(uri, self.storage), preview, content_type=PREVIEW_CONTENT_TYPE,
                        cache_control=PREVIEW_CACHE_CONTROL)
        except Exception as exc:  # a preview is optional: the file must still be named
            log.warning("no preview for %s: %s", uri, exc)

    def map_args(self) -> dict:
        return decode_task_args(self.cpus, self.max_decode_pixels)


# CPUs per decode task (see decode_cpus): half a CPU where the model runs on the CPU too (decoding is
# partly I/O; a different resource shape keeps Ray Data from fusing this stage into the model actors),
# a whole one beside GPU model actors, so that a node never runs more decoders than it has cores and
# the GPU actor's thread keeps its own.
# Retries: a decode task whose process ends (a lost node, an OOM kill, a decoder that crashes or
# exits on some file) is run again at most DECODE_TASK_RETRIES times, then the run fails. Ray Data's
# default is to retry for ever, and a file that ends its process every time would hang the run.
DECODE_TASK_RETRIES = 3
DECODE_ARGS = dict(max_retries=DECODE_TASK_RETRIES)


def decode_cpus(on_gpu: bool) -> float:
    return 1.0 if on_gpu else DECODE_CPUS


def decode_task_args(cpus: float, max_decode_pixels: int) -> dict:
    """The ``map_batches`` arguments of a decode task. ``resume.ReadClaims`` takes the same, so that
    Ray Data fuses it into the decode task (it fuses only operators with equal resources)."""
    return dict(batch_size=8, memory=decode_memory(max_decode_pixels), num_cpus=cpus, **DECODE_ARGS)


def decode_memory(max_decode_pixels: int) -> int:
    """Bytes one decode task may need (Ray's `memory` resource, so concurrency follows memory): the
    largest allowed image as RGBA, once decoded and once converted, plus the file and the result."""
    return 2 * 4 * max_decode_pixels + 256 * 1024 * 1024
