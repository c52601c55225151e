"""Symbolic links never redirect a write and never fail more than their own file: a link planted at
the manifest's name is replaced, not written through; a link at a target name fails that file (it is
neither followed nor replaced); a dangling link among the sources fails alone."""

from __future__ import annotations

import os

from renamer_ray.config import load_settings
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import drawn_files


def make_source(folder, seed: int, count: int) -> dict[str, str]:
    folder.mkdir()
    labels = {}
    for i, (data, fmt, label) in enumerate(drawn_files(seed=seed, count=count, max_side=300)):
        name = f"img_{i}.{fmt.lower().replace('heif', 'heic')}"
        (folder / name).write_bytes(data)
        labels[name] = label
    return labels


def test_links_in_dst_and_src_are_never_followed_and_fail_alone(ray_local, tmp_path):
    settings = load_settings(model_id="toy-shapes", batch_size=4)
    labels = make_source(tmp_path / "src", seed=960, count=4)
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "src" / "broken.jpg")  # a dangling link among the sources
    private = tmp_path / "private"  # a photo of the user's outside SRC, and a link to it planted in SRC
    make_source(private, seed=961, count=1)
    os.symlink(next(private.iterdir()), tmp_path / "src" / "planted.jpg")
    reference = run(RunOptions(source=str(tmp_path / "src"), target=str(tmp_path / "reference")), settings)
    names = {r.source.rsplit("/", 1)[1]: r.name for r in reference.records if r.status == "ok"}
    assert set(names) == set(labels)

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    dst = tmp_path / "dst"
    dst.mkdir()
    os.symlink(victim, dst / "manifest.jsonl")  # planted: the manifest must not be written through it
    taken = sorted(names)[0]
    os.symlink(tmp_path / "gone", dst / names[taken])  # a dangling link at a name the run will give

    summary = run(RunOptions(source=str(tmp_path / "src"), target=str(dst)), settings)

    assert victim.read_text() == "precious"
    assert (dst / "manifest.jsonl").is_file() and not (dst / "manifest.jsonl").is_symlink()
    by_source = {r.source.rsplit("/", 1)[1]: r for r in summary.records}
    # The name a planted link holds is given to nobody: that image takes the next free one, and the
    # link is neither followed nor replaced.
    assert by_source[taken].status == "ok" and by_source[taken].name != names[taken]
    assert os.path.islink(dst / names[taken]) and not (tmp_path / "gone").exists()
    for link in ("broken.jpg", "planted.jpg"):  # never read through: the outside photo reaches neither model nor DST
        assert by_source[link].status == "error" and "symbolic link: not followed" in by_source[link].error
    assert not [p for p in dst.rglob("*") if p.is_file() and p.read_bytes() == next(private.iterdir()).read_bytes()]
    for name, record in by_source.items():
        if name not in (taken, "broken.jpg", "planted.jpg"):
            assert record.status == "ok" and record.name == names[name]
            assert (dst / record.name).read_bytes() == (tmp_path / "src" / name).read_bytes()
