"""Stage: find the names already given — by an interrupted attempt (``claims.py``) or, on an
incremental re-run, by a finished earlier run to a source unchanged since (``earlier.py``). Such a
row is pinned to its name and skips the download, the decode and the model. A claim this program
did not write fails its file with the reason (``claims.RefusedClaim``); an earlier manifest's records
are filtered by ``earlier.py``."""

from __future__ import annotations

import logging

from renamer_ray.images import DEFAULT_MAX_DECODE_PIXELS
from renamer_ray.io.storage import StorageConfig, open_location, retrying
from renamer_ray.pipeline.claims import RefusedClaim, read_claim
from renamer_ray.pipeline.columns import FACTS, ROW
from renamer_ray.pipeline.decode import DECODE_CPUS, decode_task_args
from renamer_ray.pipeline.earlier import earlier_name
from renamer_ray.pipeline.stage import Stage

log = logging.getLogger(__name__)


class ReadClaims(Stage):
    """LISTED → ROW: ``pinned``, ``format`` and ``raw`` from the claim of each row marked ``resume``,
    else from the ``earlier`` manifest (then ``kept`` too)."""

    reads = ("source", "relative", "size", "mtime", "skipped", "target_root", "resume", "earlier", "earlier_size")
    adds = FACTS
    output = ROW

    def __init__(self, storage: StorageConfig, cpus: float = DECODE_CPUS,
                 max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS):
        """``cpus`` and ``max_decode_pixels``: the decode stage's, whose task this stage runs in."""
        self.storage, self.cpus, self.max_decode_pixels = storage, cpus, max_decode_pixels

    def rows(self, rows: list[dict]) -> list[dict]:
        for row in rows:
            try:
                claimed = row["resume"] and not row["skipped"] and retrying(
                    read_claim, open_location(row["target_root"], self.storage), row["relative"])
            except RefusedClaim as exc:
                log.warning("%s: %s", row["source"], exc)
                row["error"] = (f"{exc}; the file was not copied (the claims are removed when this run ends: "
                                "run again to name it)")
                continue
            if claimed:
                row.update(pinned=claimed["name"], format=claimed["format"], raw=claimed["raw"])
            elif row["earlier"] and not row["skipped"] and (given := earlier_name(self.storage, row)):
                row.update(pinned=given["name"], format=given["format"], raw=given["raw"], kept=True)
        return rows

    def map_args(self) -> dict:
        return decode_task_args(self.cpus, self.max_decode_pixels)  # one task per batch with the decode
