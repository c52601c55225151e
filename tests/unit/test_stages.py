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


def test_stems_and_dedupe_follow_each_rows_style(tmp_path):
    """One run may carry jobs of several styles: each row is named, suffixed and recorded in its own."""
    from renamer_ray.naming import NamingStyle
    from renamer_ray.pipeline.columns import STEMMED
    from renamer_ray.pipeline.dedupe import Dedupe

    title, snake = NamingStyle(case="title"), NamingStyle(case="snake", max_chars=30)
    base = dict(relative="a.jpg", size=1, mtime=None, index=1, skipped=False, original=None, prompt=None,
                template="{subject}", resume=False, format="JPEG", date=None, camera=None, error=None, pinned=None,
                raw="red circle")
    rows = [dict(base, source=f"s/{job}{n}.jpg", target_root=str(tmp_path / job), style=style.to_json())
            for job, style in (("t", title), ("s", snake)) for n in range(2)]
    rows.append(dict(base, source="s/k.jpg", target_root=str(tmp_path / "k"), style=None))
    stemmed = RenderStems()(pa.Table.from_pylist(rows, schema=ROW)).to_pylist()
    assert [r["stem"] for r in stemmed] == ["Red Circle", "Red Circle", "red_circle", "red_circle", "red-circle"]
    out = Dedupe(load_settings().storage)(pa.Table.from_pylist(stemmed, schema=STEMMED)).to_pylist()
    assert [r["name"] for r in out] == ["Red Circle.jpg", "Red Circle 001.jpg", "red_circle.jpg", "red_circle_001.jpg",
                                       "red-circle.jpg"]
    assert [NamingStyle.from_json(r["style"]) for r in out] == [title, title, snake, snake, NamingStyle()]


def test_a_duplicate_with_no_room_for_a_suffix_fails_alone(tmp_path):
    from renamer_ray.naming import NamingStyle
    from renamer_ray.pipeline.columns import STEMMED
    from renamer_ray.pipeline.dedupe import Dedupe

    tiny = NamingStyle(max_chars=3).to_json()
    rows = [dict(source=f"s/{n}.jpg", relative=f"{n}.jpg", skipped=False, target_root=str(tmp_path), style=tiny,
                 format="PNG", error=None, pinned=None, raw="cat", stem="cat", key="k") for n in range(2)]
    out = Dedupe(load_settings().storage)(pa.Table.from_pylist(rows, schema=STEMMED)).to_pylist()
    assert out[0]["name"] == "cat.png" and out[1]["status"] == "error" and "3 characters" in out[1]["error"]


def test_a_batch_is_one_model_call_whatever_its_rows_prompts_and_styles_and_the_case_is_not_the_models():
    from renamer_ray.model.namer import Naming
    from renamer_ray.naming import NamingStyle
    from renamer_ray.pipeline.infer import name_rows

    calls = []

    class Recording:
        def name(self, images, contexts, prompt, style=None):
            calls.append((len(images), prompt, style))
            return [Naming(raw="red-circle") for _ in images]

    pixel = dict(width=1, height=1, rgb=b"\0\0\0", date=None, camera=None)
    styles = [NamingStyle(case="title"), NamingStyle(case="snake"), NamingStyle(language="Japanese"), None]
    rows = [dict(pixel, prompt=None, style=style and style.to_json()) for style in styles]
    rows.append(dict(pixel, prompt="the colour", style=None))
    assert [a["raw"] for a in name_rows(Recording(), rows)] == ["red-circle"] * 5
    assert calls == [(5, [None, None, None, None, "the colour"],
                      [NamingStyle(), NamingStyle(), NamingStyle(language="Japanese"), NamingStyle(), NamingStyle()])]


def test_a_copy_onto_a_file_that_appeared_since_the_names_were_given_fails_that_file_alone(tmp_path):
    """Between de-duplication and the copy a file may appear at the name: it is never overwritten,
    and only that row fails, saying so."""
    from renamer_ray.pipeline.columns import RESULT
    from renamer_ray.pipeline.write import CopyFiles

    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "src" / name).write_bytes(f"photo {name}".encode())
    (tmp_path / "dst" / "red-circle.png").write_bytes(b"someone else's")

    def row(source: str, name: str) -> dict:
        return {"source": str(tmp_path / "src" / source), "relative": source, "target_root": str(tmp_path / "dst"),
                "size": 9, "mtime": 1.0, "kept": False, "format": "PNG", "name": name, "output": name,
                "target": str(tmp_path / "dst" / name), "status": "ok", "pinned": None}

    out = CopyFiles(load_settings().storage)(table([row("a.png", "red-circle.png"), row("b.png", "blue.png")], RESULT))
    first, second = out.to_pylist()
    assert first["status"] == "error" and "not overwritten" in first["error"], first
    assert (tmp_path / "dst" / "red-circle.png").read_bytes() == b"someone else's"
    assert second["status"] == "ok" and (tmp_path / "dst" / "blue.png").read_bytes() == b"photo b.png"
