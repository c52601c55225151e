"""A run's results: each row out of the pipeline counted and recorded, the manifest, the summary.

The records go to sorted parts of ``PART_ROWS`` under DST (the driver never holds more), merged
into the manifest at the end with the earlier run's records this run did not list (``earlier.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from renamer_ray.io.storage import Location, make_dirs, open_output, read_lines, remove_folder, write_text
from renamer_ray.pipeline.claims import interrupted
from renamer_ray.pipeline.earlier import carry_over
from renamer_ray.records.manifest import PART_ROWS, PARTS_FOLDER, FileRecord, dump_lines, merge_sorted

SHOWN_RECORDS = 1000
MERGE_FAN_IN = 256  # parts open at once in a merge (a buffered stream each: io.storage READ_BUFFER_BYTES)


@dataclass
class RunSummary:
    records: list[FileRecord]         # the first SHOWN_RECORDS by source (all of them in the manifest)
    skipped: int                      # listed keys that are not image files by extension
    seconds: float
    manifest: str
    source_root: str = ""             # sources are shown relative to this
    ok: int = 0
    failed: int = 0
    resumed: int = 0                  # named by an interrupted earlier attempt; kept, not asked again
    kept: int = 0                     # unchanged since an earlier run into DST named them (incremental)
    named_by_node: dict[str, int] = field(default_factory=dict)  # Ray node id → images its model named

    @classmethod
    def of(cls, records: list[FileRecord], **kwargs) -> "RunSummary":
        return cls(records=records, ok=sum(r.status == "ok" for r in records),
                   failed=sum(r.status == "error" for r in records), **kwargs)


class Results:
    """The rows of one run into ``target``, as they come out of the pipeline. ``in_place_root``: SRC
    of an in-place run, whose renamed records say so (the moves come after: ``workflow/inplace.py``)."""

    def __init__(self, target: Location, *, in_place_root: str | None = None):
        self.target, self.in_place_root = target, in_place_root
        self.folder = target.join(PARTS_FOLDER)
        make_dirs(self.folder)
        self.parts: list[Location] = []
        self.buffer: list[FileRecord] = []
        self.shown: list[FileRecord] = []
        self.counts = {"ok": 0, "error": 0, "skipped": 0}
        self.resumed = self.kept = 0
        self.named_by_node: Counter[str] = Counter()  # the run's own model actors say where they ran

    @property
    def done(self) -> int:
        return self.counts["ok"] + self.counts["error"]

    def add(self, row: dict) -> None:
        """Count a ``columns.RESULT`` row and keep its record (a skipped file has none)."""
        self.counts[row["status"]] += 1
        self.kept += bool(row["kept"])
        self.resumed += bool(row["pinned"]) and not row["kept"]
        if row["node"]:
            self.named_by_node[row["node"]] += 1
        if self.in_place_root and row["kept"] and row["source"] == row["target"]:
            return  # renamed by an earlier run: its record (with the original name) is carried over
        if row["status"] != "skipped":
            self.buffer.append(FileRecord.model_validate(row))
            if self.in_place_root and row["status"] == "ok":
                self.buffer[-1].in_place, self.buffer[-1].root = True, self.in_place_root
            if len(self.buffer) >= PART_ROWS:
                self.flush()

    def flush(self) -> None:
        """Write the buffer as one sorted part."""
        if not self.buffer:
            return
        self.buffer.sort(key=lambda r: r.source)
        self.parts.append(self.folder.join(f"part-{len(self.parts):06d}.jsonl"))
        write_text(self.parts[-1], dump_lines(self.buffer))
        self.shown = sorted(self.shown + self.buffer, key=lambda r: r.source)[:SHOWN_RECORDS]
        self.buffer.clear()

    def write_manifest(self, manifest: Location, earlier: Location | None, source_root: str) -> None:
        """The parts merged, with the earlier manifest's records this run did not list, into ``manifest``."""
        self.flush()
        self.merge_down()
        make_dirs(manifest.parent)
        with open_output(manifest) as out:  # S3: a streamed multipart upload; locally: never through a symlink
            merged = merge_sorted(read_lines(part) for part in self.parts)
            for line in carry_over(merged, earlier, source_root, self.target.uri):
                out.write(line.encode("utf-8"))

    def merge_down(self) -> None:
        """Merge the parts MERGE_FAN_IN at a time into larger sorted parts until at most MERGE_FAN_IN
        are left, so that the final merge never holds more files open than that (10⁷ records are
        1,000 parts: past a common limit of 1,024 open files)."""
        while len(self.parts) > MERGE_FAN_IN:
            merged: list[Location] = []
            for start in range(0, len(self.parts), MERGE_FAN_IN):
                group = self.parts[start:start + MERGE_FAN_IN]
                merged.append(self.folder.join(f"merged-{len(self.parts):06d}-{start // MERGE_FAN_IN:06d}.jsonl"))
                with open_output(merged[-1]) as out:
                    for line in merge_sorted(read_lines(part) for part in group):
                        out.write(line.encode("utf-8"))
                for part in group:
                    part.filesystem.delete_file(part.path)
            self.parts = merged

    def clean_up(self, *, plan_only: bool) -> None:
        """Remove the parts; a plan only leaves the claims of an interrupted real run into DST for it."""
        if plan_only:
            for part in self.parts:
                part.filesystem.delete_file(part.path)
        if not plan_only or not interrupted(self.target):  # (pyarrow may leave an S3 "folder" marker behind)
            remove_folder(self.folder)

    def summary(self, *, seconds: float, manifest: Location, source_root: str) -> RunSummary:
        return RunSummary(records=self.shown, skipped=self.counts["skipped"], ok=self.counts["ok"],
                          failed=self.counts["error"], resumed=self.resumed, kept=self.kept, seconds=seconds,
                          manifest=manifest.uri, source_root=source_root, named_by_node=dict(self.named_by_node))
