"""The pipeline's stage contracts, without running Ray: every stage gets the columns it declares it
needs from the stage before it, in every shape of run; a batch without them, or a row with a
misspelled column, is an error instead of silent nulls."""

from __future__ import annotations

import pyarrow as pa
import pytest

from renamer_ray.config import load_settings
from renamer_ray.pipeline.columns import LISTED, ROW, table
from renamer_ray.pipeline.run import NamerRef, stages
from renamer_ray.pipeline.stage import StageInputError
from renamer_ray.pipeline.stems import RenderStems

SHAPES = [dict(), dict(dry_run=True), dict(uses_model=False), dict(namer=NamerRef()), dict(namer=NamerRef(), dry_run=True)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_each_stage_gets_the_columns_it_needs_from_the_one_before(shape):
    pipeline = stages(load_settings(model_id="toy-shapes"), **shape)
    columns = set(LISTED.names)
    for stage in pipeline:
        assert set(stage.needs) <= columns, (type(stage).__name__, set(stage.needs) - columns)
        columns = set(stage.output.names)
    assert columns >= {"source", "target", "name", "status", "error", "pinned"}
    assert ("CopyFiles" in [type(s).__name__ for s in pipeline]) is not shape.get("dry_run", False)


def test_a_stage_refuses_a_batch_without_its_columns():
    batch = table([{"source": "a.jpg", "relative": "a.jpg"}], LISTED)
    with pytest.raises(StageInputError, match="RenderStems needs the columns"):
        RenderStems()(batch.drop_columns(["template"]))


def test_a_misspelled_column_is_an_error_not_a_silent_null():
    with pytest.raises(ValueError, match="nmae"):
        table([{"source": "a.jpg", "nmae": "x"}], ROW)
    assert table([{"source": "a.jpg", "rgb": b"x"}], ROW, drop=("rgb",)).column("source").to_pylist() == ["a.jpg"]


def test_render_stems_names_open_rows_and_keeps_pinned_ones():
    base = dict(source="s/a.jpg", relative="a.jpg", size=1, mtime=None, index=1, skipped=False, original=None,
                target_root="/out", prompt=None, template="{subject}", resume=False, format="JPEG", date=None,
                camera=None, error=None, pinned=None, raw=None)
    rows = [dict(base, raw="Red Circle!"), dict(base, source="s/b.jpg", pinned="blue-square.jpg"),
            dict(base, source="s/c.jpg", error="broken")]
    out = RenderStems()(pa.Table.from_pylist(rows, schema=ROW)).to_pylist()
    assert [r["stem"] for r in out] == ["red-circle", "blue-square", None]
    assert out[0]["key"].startswith("/out\n") and out[2]["key"] == ""
