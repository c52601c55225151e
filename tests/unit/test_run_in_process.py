"""A run of a few files through the pipeline's stages in one process (``build.run_in_process``, the
service's small-job lane), without Ray: the same rules as a Ray Data run — names de-duplicated
within each output folder, a corrupt file failed alone with its reason, a non-image skipped, every
named file copied once — and a run's own model actors refused (they need Ray Data)."""

from __future__ import annotations

import pytest

from renamer_ray.config import load_settings
from renamer_ray.pipeline.build import PipelineOptions, run_in_process
from renamer_ray.pipeline.columns import LISTED, RESULT, table
from renamer_ray.pipeline.rows import Wishes, listed_row
from tests.support.images import drawn_files


def listed(tmp_path, files: dict[str, bytes], *, flat: bool):
    src, dst = tmp_path / "src", tmp_path / "dst"
    wishes = Wishes(target_root=str(dst), prompt=None, template="{original}", flat=flat)
    rows = []
    for index, (relative, data) in enumerate(sorted(files.items()), start=1):
        path = src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(listed_row(str(path), relative, wishes, size=len(data), mtime=None, index=index,
                               image=not relative.endswith(".txt")))
    return table(rows, LISTED), dst


def test_a_small_run_names_copies_and_fails_each_file_as_a_pipeline_run_does(tmp_path):
    png = [data for data, fmt, _ in drawn_files(seed=31, count=8, max_side=96) if fmt == "PNG"]
    rows, dst = listed(tmp_path, {"a/photo.png": png[0], "b/photo.png": png[1], "c/broken.png": b"not a png",
                                  "c/notes.txt": b"hello"}, flat=True)
    out = run_in_process(rows, load_settings(model_id="toy-shapes"), PipelineOptions(uses_model=False))
    assert out.schema == RESULT
    by_relative = {row["relative"]: row for row in out.to_pylist()}
    assert sorted(by_relative) == ["a/photo.png", "b/photo.png", "c/broken.png", "c/notes.txt"]
    named = sorted(by_relative[r]["name"] for r in ("a/photo.png", "b/photo.png"))
    assert named == ["photo-001.png", "photo.png"]
    assert by_relative["c/broken.png"]["status"] == "error" and by_relative["c/broken.png"]["error"]
    assert by_relative["c/notes.txt"]["status"] == "skipped"
    copied = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file() and "photo" in p.name)
    assert copied == named
    assert {(dst / by_relative[r]["name"]).read_bytes() for r in ("a/photo.png", "b/photo.png")} == {png[0], png[1]}


def test_names_only_compete_within_their_output_folder(tmp_path):
    png = [data for data, fmt, _ in drawn_files(seed=32, count=8, max_side=96) if fmt == "PNG"]
    rows, dst = listed(tmp_path, {"a/photo.png": png[0], "b/photo.png": png[1]}, flat=False)
    out = run_in_process(rows, load_settings(model_id="toy-shapes"), PipelineOptions(uses_model=False))
    assert sorted(row["output"] for row in out.to_pylist()) == ["a/photo.png", "b/photo.png"]
    assert (dst / "a" / "photo.png").read_bytes() == png[0] and (dst / "b" / "photo.png").read_bytes() == png[1]


def test_a_runs_own_model_actors_cannot_run_in_one_process(tmp_path):
    rows, _ = listed(tmp_path, {"a.png": drawn_files(seed=33, count=1, max_side=64)[0][0]}, flat=True)
    with pytest.raises(ValueError, match="ModelPool runs in actors of its own"):
        run_in_process(rows, load_settings(model_id="toy-shapes"), PipelineOptions())
