"""Stage: apply each row's template and the naming rules of its style to the model's answer: the stem
of its new name, and the key that groups every name it could collide with (for ``dedupe.py``)."""

from __future__ import annotations

import functools
import posixpath

from renamer_ray.naming import NameTemplate, NamingStyle
from renamer_ray.pipeline.columns import STEM, STEMMED
from renamer_ray.pipeline.rows import OUTPUT_FOLDER, STATE, is_open, output_folder
from renamer_ray.pipeline.stage import Stage

_template = functools.lru_cache(maxsize=256)(NameTemplate.parse)
ROWS_PER_BATCH = 128


class RenderStems(Stage):
    """ROW → STEMMED. A pinned row keeps the stem of its claimed name. The shuffle key is the output
    root, the folder under it and the stem's group key: names only compete within one output folder."""

    reads = (*STATE, *OUTPUT_FOLDER, "target_root", "style", "template", "raw", "original", "date", "camera", "index")
    adds = STEM
    output = STEMMED

    def __init__(self, index_width: int = 3):
        self.index_width = index_width

    def map_args(self) -> dict:
        # This stage's blocks are the shuffle's: it sorts each in a task of its own, and gives as
        # many blocks out, each the input of one task of de-duplication, claims and copies. The
        # model's batches (≈ 12 rows) made a shuffle task per dozen files (960 files: 50 sort
        # tasks, 4 s on 2 cores; the sort's objects grow as the square of its blocks); one block
        # for all left one task to claim and copy every file. Nothing waits for the larger
        # batches: the shuffle needs every row before it gives any.
        return dict(batch_size=ROWS_PER_BATCH)

    def rows(self, rows: list[dict]) -> list[dict]:
        for row in rows:
            style = NamingStyle.from_json(row["style"])
            if row["pinned"]:
                row["stem"] = posixpath.splitext(row["pinned"])[0]
            elif is_open(row):
                original = posixpath.splitext(posixpath.basename(row["original"] or row["relative"]))[0]
                row["stem"] = _template(row["template"]).render(
                    subject=row["raw"] or "", date=row["date"], camera=row["camera"], original=original,
                    index=row["index"], index_width=self.index_width, style=style)
            row["key"] = (f"{row['target_root']}\n{output_folder(row)}\n{style.group_key(row['stem'])}"
                          if row.get("stem") else "")
        return rows
