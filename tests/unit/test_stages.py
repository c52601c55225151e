"""The pipeline's stage contracts, without running Ray: in every kind of run, every column a stage
reads was made by a stage before it, and each stage's output is its input less what it drops plus
what it adds; a stage runs on a batch of only the columns it declares; a batch without them, or a row
with a misspelled column, is an error instead of silent nulls."""

from __future__ import annotations

import pyarrow as pa
import pytest

from renamer_ray.config import load_settings
from renamer_ray.io.storage import StorageConfig
from renamer_ray.pipeline.build import PipelineOptions, stages
from renamer_ray.pipeline.columns import LISTED, ROW, table
from renamer_ray.pipeline.engines import NamerRef
from renamer_ray.pipeline.stage import StageInputError
from renamer_ray.pipeline.stems import RenderStems
from renamer_ray.records.manifest import FileRecord

ENDPOINT = dict(engine="openai", engine_url="http://127.0.0.1:8000/v1")
# Every kind of run, as its caller shapes the pipeline: (settings, options, the model stage it gets).
RUNS = {
    "bulk": ({}, PipelineOptions(), "ModelPool"),
    "bulk, ENGINE=openai": (ENDPOINT, PipelineOptions(), "AskEndpoint"),
    "bulk, ENGINE=vllm": (dict(engine="vllm"), PipelineOptions(), "VllmEngine"),
    "no {subject} in the template": ({}, PipelineOptions(uses_model=False), "NoModel"),
    "service (the warm namer)": (ENDPOINT, PipelineOptions(namer=NamerRef()), "AskNamer"),
    "dry run": ({}, PipelineOptions(dry_run=True), "ModelPool"),
    "service dry run": ({}, PipelineOptions(namer=NamerRef(), dry_run=True), "AskNamer"),
    "in place (the plan)": ({}, PipelineOptions(dry_run=True, look_at_targets=True), "ModelPool"),
    "resumed or incremental": ({}, PipelineOptions(look_at_targets=True), "ModelPool"),
}
# What the callers read of every row out of the pipeline: its manifest record (but the in-place
# fields, set after: pipeline/results.py), the counts, and the driver's per-file state (service/driver/runs.py).
CONSUMED = set(FileRecord.model_fields) - {"in_place", "root"} | {"kept", "pinned", "target_root"}


@pytest.mark.parametrize("kind", RUNS)
def test_every_column_a_stage_reads_was_made_upstream_in_every_kind_of_run(kind):
    settings, options, model = RUNS[kind]
    pipeline = stages(load_settings(model_id="toy-shapes", **settings), options)
    assert type(pipeline[2]).__name__ == model
    columns = list(LISTED.names)
    for stage in pipeline:
        name = type(stage).__name__
        assert set(stage.reads) <= set(columns), (name, "reads what no stage before made", set(stage.reads) - set(columns))
        assert set(stage.drops) <= set(columns), (name, "drops what it never got", set(stage.drops) - set(columns))
        assert not set(stage.adds) & set(columns), (name, "adds what it got", set(stage.adds) & set(columns))
        made = [column for column in columns if column not in stage.drops] + list(stage.adds)
        assert sorted(stage.output.names) == sorted(made), (name, "returns another schema than it declares")
        columns = stage.output.names
    assert CONSUMED <= set(columns), CONSUMED - set(columns)
    assert ("CopyFiles" in [type(s).__name__ for s in pipeline]) is not options.dry_run


def only_what_it_reads(stage, row: dict) -> pa.Table:
    return pa.Table.from_pylist([{column: row[column] for column in stage.reads}])


def test_each_stage_runs_on_a_batch_of_only_the_columns_it_declares_it_reads(tmp_path):
    """Declared reads are all a stage reads: each stage gets a batch with no other column and does its work."""
    from renamer_ray.images import decode
    from renamer_ray.pipeline.decode import Decode
    from renamer_ray.pipeline.dedupe import Dedupe
    from renamer_ray.pipeline.resume import ReadClaims
    from renamer_ray.pipeline.write import ClaimNames, CopyFiles
    from tests.support.images import drawn_files

    storage = StorageConfig()
    data = next(data for data, fmt, _ in drawn_files(seed=5, count=4, max_side=100) if fmt == "PNG")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(data)
    (tmp_path / "earlier.jsonl").write_text("")
    pixels = decode(data, max_pixels=64 * 64)
    row = dict(source=str(tmp_path / "src" / "a.png"), relative="a.png", size=len(data), mtime=1.0, index=1,
               skipped=False, original=None, target_root=str(tmp_path / "dst"), prompt=None, template="{subject}-{index}",
               style=None, resume=True, flat=False, earlier=str(tmp_path / "earlier.jsonl"), earlier_size=0,
               preview_to=None, format="PNG", date="2024-05-01", camera=None, error=None, pinned=None, kept=False, raw="red circle",
               node=None, source_head=None,
               width=pixels.width, height=pixels.height, rgb=pixels.rgb, stem="red-circle-001", key="k",
               target=str(tmp_path / "dst" / "red-circle-001.png"), name="red-circle-001.png",
               output="red-circle-001.png", status="ok")
    checks = [
        (ReadClaims(storage), {"pinned": None, "error": None}),
        (Decode(storage, max_pixels=64 * 64, max_file_bytes=10 ** 6), {"format": "PNG", "width": pixels.width}),
        (RenderStems(), {"stem": "red-circle-001"}),
        (Dedupe(storage), {"name": "red-circle-001.png", "status": "ok"}),
        (ClaimNames(storage), {"status": "ok"}),
        (CopyFiles(storage), {"status": "ok"}),
    ]
    for stage, expected in checks:
        out = stage(only_what_it_reads(stage, row)).to_pylist()
        assert [{k: r[k] for k in expected} for r in out] == [expected], type(stage).__name__
    assert (tmp_path / "dst" / "red-circle-001.png").read_bytes() == data


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
    out = Dedupe(StorageConfig())(pa.Table.from_pylist(stemmed, schema=STEMMED)).to_pylist()
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
    out = Dedupe(StorageConfig())(pa.Table.from_pylist(rows, schema=STEMMED)).to_pylist()
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

    out = CopyFiles(StorageConfig())(table([row("a.png", "red-circle.png"), row("b.png", "blue.png")], RESULT))
    first, second = out.to_pylist()
    assert first["status"] == "error" and "not overwritten" in first["error"], first
    assert (tmp_path / "dst" / "red-circle.png").read_bytes() == b"someone else's"
    assert second["status"] == "ok" and (tmp_path / "dst" / "blue.png").read_bytes() == b"photo b.png"
