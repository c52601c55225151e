"""The Ray Data rename pipeline end to end, on a real local Ray and the toy checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from renamer_ray.workflow.apply import PlanError, apply_plan
from renamer_ray.cli import SAMPLES, main
from renamer_ray.config import load_settings
from renamer_ray.records.manifest import parse_lines
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import SAMPLES_EXPECTED as EXPECTED, drawn_files, encode



def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(folder: Path) -> dict[str, dict]:
    rows = parse_lines((folder / "manifest.jsonl").read_text())
    return {r.source: r.model_dump(exclude_none=True) for r in rows}


@pytest.fixture(scope="module")
def settings():
    return load_settings(model_id="toy-shapes", batch_size=4)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The bundled samples plus the bad files users have: corrupt, empty, truncated."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(SAMPLES, src, dirs_exist_ok=True)
    good_jpeg = (src / "IMG_0001.JPG").read_bytes()
    (src / "corrupt.jpg").write_bytes(os.urandom(3000))
    (src / "empty.png").write_bytes(b"")
    (src / "holiday" / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    return src


@pytest.fixture(scope="module")
def renamed(ray_local, source, settings, tmp_path_factory):
    before = {p: digest(p) for p in source.rglob("*") if p.is_file()}
    dst = tmp_path_factory.mktemp("dst")
    summary = run(RunOptions(source=str(source), target=str(dst)), settings)
    return summary, dst, before


def test_every_image_gets_its_own_correct_name(renamed, source):
    summary, dst, _ = renamed
    rows = manifest(dst)
    names = {Path(s).relative_to(source).as_posix(): r.get("name") for s, r in rows.items()}
    # Three images of a yellow circle: suffixes follow the sorted source paths, whatever finished first.
    assert names["IMG_0001.JPG"] == "yellow-circle.jpg"
    assert names["Screenshot 2024-05-01 at 10.22.33.png"] == "yellow-circle-001.png"
    assert names["wallpaper.png"] == "yellow-circle-002.png"
    for relative, label in EXPECTED.items():
        assert names[relative].rsplit(".", 1)[0].startswith(label), (relative, names[relative])
    assert names["photo (1).jpg"].endswith(".png"), "the extension follows the bytes, not the old name"
    assert names["IMG_0003.HEIC"].endswith(".heic") and names["scan_0042.tiff"].endswith(".tiff")
    assert summary.skipped == 1  # notes.txt


def test_folders_are_kept_and_names_are_unique_per_folder(renamed, source):
    """SRC/holiday/x → DST/holiday/<name>: a trip's photos stay together, and a name taken in another
    folder is free here (no -001 for the only blue square of the holiday)."""
    _, dst, _ = renamed
    rows = {Path(s).relative_to(source).as_posix(): r for s, r in manifest(dst).items()}
    assert rows["holiday/beach-day.webp"]["output"] == "holiday/blue-square.webp"
    assert (dst / "holiday" / "blue-square.webp").read_bytes() == (source / "holiday" / "beach-day.webp").read_bytes()
    assert rows["IMG_0003.HEIC"]["output"] == "blue-square.heic"
    assert rows["photo (1).jpg"]["output"] == "blue-square-001.png"
    for relative, row in rows.items():
        assert row["relative"] == relative and row["size"] == (source / relative).stat().st_size
        if row["status"] == "ok":
            assert row["output"] == str(Path(relative).parent / row["name"]).removeprefix("./")


def test_flat_puts_every_image_straight_into_dst(ray_local, source, settings, tmp_path):
    run(RunOptions(source=str(source), target=str(tmp_path), flat=True), settings)
    rows = {Path(s).relative_to(source).as_posix(): r for s, r in manifest(tmp_path).items()}
    assert rows["IMG_0003.HEIC"]["output"] == "blue-square.heic"
    assert rows["holiday/beach-day.webp"]["output"] == "blue-square-001.webp"
    assert rows["photo (1).jpg"]["output"] == "blue-square-002.png"
    assert not (tmp_path / "holiday").exists()


def test_bad_files_fail_alone_with_a_reason(renamed, source):
    summary, dst, _ = renamed
    rows = manifest(dst)
    failed = {Path(s).name: r for s, r in rows.items() if r["status"] == "error"}
    assert set(failed) == {"corrupt.jpg", "empty.png", "truncated.jpg"}
    assert "0 bytes" in failed["empty.png"]["error"]
    assert "not an image" in failed["corrupt.jpg"]["error"]
    assert "truncated" in failed["truncated.jpg"]["error"]
    assert summary.ok == len(EXPECTED) and summary.failed == 3


def test_outputs_are_byte_identical_copies_and_originals_untouched(renamed, source):
    summary, dst, before = renamed
    assert before == {p: digest(p) for p in source.rglob("*") if p.is_file()}
    outputs = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file() and p.name != "manifest.jsonl")
    assert len(outputs) == len(EXPECTED) == len(set(outputs))
    for src, row in manifest(dst).items():
        if row["status"] == "ok":
            assert row["target"] == str(dst / row["output"])
            assert digest(Path(row["target"])) == digest(Path(src))
            assert row["raw"]


def test_rerun_is_idempotent_and_deterministic(renamed, source, settings, monkeypatch):
    _, dst, _ = renamed
    first = (dst / "manifest.jsonl").read_text()
    # The manifest is written in sorted parts and merged; tiny parts must give the same file.
    monkeypatch.setattr("renamer_ray.pipeline.results.PART_ROWS", 4)
    again = run(RunOptions(source=str(source), target=str(dst)), settings)
    assert (dst / "manifest.jsonl").read_text() == first
    assert not (dst / "_manifest").exists(), "parts are removed once merged"
    assert again.ok == len(EXPECTED), "byte-identical targets from the last run count as done"


def test_dry_run_then_apply_an_edited_plan(ray_local, source, settings, tmp_path):
    plan_dir, out = tmp_path / "plan", tmp_path / "out"
    run(RunOptions(source=str(source), target=str(plan_dir), dry_run=True), settings)
    assert [p.name for p in plan_dir.iterdir()] == ["manifest.jsonl"], "a dry run copies nothing"

    lines = (plan_dir / "manifest.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    edited = next(r for r in rows if r["source"].endswith("IMG_0002.JPG"))
    edited["name"] = "my-favourite-triangle.jpg"

    def write(rows_, path):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows_))

    bad = [dict(r) for r in rows]
    bad[0]["name"] = "Not Kebab.jpg"
    bad_ext = [dict(r) for r in rows]
    next(r for r in bad_ext if r["source"].endswith("photo (1).jpg"))["name"] = "blue-square-9.jpg"
    clash = [dict(r) for r in rows]
    oks = [r for r in clash if r["status"] == "ok"]
    oks[1]["name"] = oks[0]["name"].rsplit(".", 1)[0].upper().lower() + "." + oks[1]["name"].rsplit(".", 1)[1]
    for broken, message in [(bad, "breaks the naming rules"), (bad_ext, "real format"), (clash, "collides")]:
        write(broken, tmp_path / "broken.jsonl")
        with pytest.raises(PlanError, match=message):
            apply_plan(str(tmp_path / "broken.jsonl"), str(out), settings)
        assert not out.exists() or not any(out.iterdir()), "nothing is copied from a broken plan"

    write(rows, tmp_path / "plan.jsonl")
    summary = apply_plan(str(tmp_path / "plan.jsonl"), str(out), settings)
    assert (out / "my-favourite-triangle.jpg").read_bytes() == (source / "IMG_0002.JPG").read_bytes()
    assert summary.ok == len(EXPECTED) and summary.failed == 3
    assert len([p for p in out.rglob("*") if p.is_file() and p.name != "manifest.jsonl"]) == len(EXPECTED)
    assert (out / "holiday" / "blue-square.webp").is_file(), "the plan's folders are kept"


def test_template_with_capture_date(ray_local, settings, tmp_path):
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    (data, _, label), (data2, _, label2) = drawn_files(seed=3, count=2)
    image = Image.open(__import__("io").BytesIO(data)).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2023:07:14 10:22:01"
    buf = __import__("io").BytesIO()
    image.save(buf, format="JPEG", exif=exif.tobytes())
    (src / "with-exif.jpg").write_bytes(buf.getvalue())
    (src / "no-exif.png").write_bytes(encode(Image.open(__import__("io").BytesIO(data2)).convert("RGB"), "PNG"))
    os.utime(src / "no-exif.png", (1_600_000_000, 1_600_000_000))  # 2020-09-13
    run(RunOptions(source=str(src), target=str(tmp_path / "dst"), template="{date}-{subject}-{index}",
                   dry_run=True), settings)
    names = {Path(s).name: r["name"] for s, r in manifest(tmp_path / "dst").items()}
    assert names["with-exif.jpg"] == f"2023-07-14-{label}-002.jpg"
    assert names["no-exif.png"] == f"2020-09-13-{label2}-001.png", "falls back to the file's modification time"


def test_cli_rename_prints_a_summary(ray_local, source, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MODEL_ID", raising=False)
    code = main(["rename", str(source / "holiday"), str(tmp_path / "out"), "--model", "toy-shapes"])
    out = capsys.readouterr().out
    assert code == 1, "a failed file makes the exit status non-zero"
    assert "beach-day.webp" in out and "1 failed" in out and "manifest:" in out
    assert main(["rename", str(source), str(tmp_path / "x"), "--template", "{when}"]) == 2
    assert "when" in capsys.readouterr().err


def test_the_pipeline_sets_its_shuffle_on_its_own_data_context(ray_local):
    """De-duplication uses Ray Data's task-based sort shuffle, set on the pipeline's own context: other
    datasets of the process (the service runs several pipelines and may run others) keep the default."""
    from ray.data.context import DataContext, ShuffleStrategy

    from renamer_ray.pipeline.columns import LISTED, table
    from renamer_ray.pipeline.build import PipelineOptions, build_dataset

    before = DataContext.get_current().shuffle_strategy
    listed = ray_local.data.from_arrow(table([], LISTED))
    ds = build_dataset(listed, load_settings(model_id="toy-shapes"), PipelineOptions(uses_model=False, dry_run=True))
    assert ds.context.shuffle_strategy == ShuffleStrategy.SORT_SHUFFLE_PULL_BASED != before
    assert DataContext.get_current().shuffle_strategy == before


def test_a_run_in_one_process_gives_what_the_ray_data_pipeline_gives(ray_local, tmp_path, source):
    """The service's small-job lane (``build.run_in_process``) and a Ray Data run of the same rows:
    the same names, statuses and reasons, file for file (the samples and the bad files, names that
    collide in one flat folder)."""
    import pyarrow as pa

    from renamer_ray.pipeline.build import PipelineOptions, build_dataset, run_in_process
    from renamer_ray.pipeline.columns import LISTED, table
    from renamer_ray.pipeline.rows import Wishes, listed_row

    def listed(dst: Path) -> pa.Table:
        wishes = Wishes(target_root=str(dst), template="photo-{index}", flat=True)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        return table([listed_row(str(p), p.relative_to(source).as_posix(), wishes, size=p.stat().st_size, mtime=None,
                                 index=n % 3 + 1, image=p.suffix.lower() != ".txt") for n, p in enumerate(files)], LISTED)

    def outcome(rows: list[dict]) -> dict[str, tuple]:
        return {row["relative"]: (row["status"], row["name"], row["error"]) for row in rows}

    options, settings = PipelineOptions(uses_model=False), load_settings(model_id="toy-shapes")
    in_process = outcome(run_in_process(listed(tmp_path / "one"), settings, options).to_pylist())
    with_ray_data = outcome(build_dataset(ray_local.data.from_arrow(listed(tmp_path / "ray")), settings, options)
                            .take_all())
    assert in_process == with_ray_data
    assert {status for status, _, _ in in_process.values()} == {"ok", "error", "skipped"}
    named = [name for status, name, _ in in_process.values() if status == "ok"]
    assert len(set(named)) == len(named) > 3  # three stems among them: de-duplicated
