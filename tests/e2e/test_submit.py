"""`renamer-ray submit` as a user runs it, against the running local stack (`renamer-ray up`):
a folder tree in jobs of a few files, followed to the end and downloaded with its folders kept;
job ids without --wait; a wrong key or address said in one line; a re-run that duplicates and
overwrites nothing."""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from renamer_ray.records.manifest import FileRecord
from renamer_ray.service.local.ports import free_ports
from tests.support.images import drawn_files
from tests.support.stack import A, KEY_A, LIMITS
from tests.support.output import said

SCRIPT = Path(sys.executable).with_name("renamer-ray")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
JOB_ID = re.compile(r"\bjr_[0-9a-f]{16}\b")


def run(*args: str, timeout: float = 400, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), "submit", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the manifest, by its path relative to it."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


def draw_tree(root: Path) -> dict[str, str]:
    """A tree of drawn shapes: photos/top.*, photos/a/ (7 images: the 1st and the 4th of the same
    shape, all others different), photos/b/c/ (5 different shapes), and a text file. Returns, for
    each image, the path the client must give it under --out with 3 files per job: the names the
    toy model gives, with the 4th image of a/ (in the second job of a/) suffixed after the 1st."""
    pool = drawn_files(seed=611, count=80, max_side=200)
    by_label: dict[str, list[tuple[bytes, str]]] = {}
    for data, fmt, label in pool:
        by_label.setdefault(label, []).append((data, fmt))
    labels = sorted(label for label, drawn in by_label.items() if len(drawn) >= 2)
    assert len(labels) >= 7, labels
    plan = {"a": [labels[0], labels[1], labels[2], labels[0], labels[3], labels[4], labels[5]],
            "b/c": labels[1:6], "": [labels[0]]}
    expected = {}
    for folder, shapes in plan.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        seen: set[str] = set()
        for i, label in enumerate(shapes):
            data, fmt = by_label[label][1 if label in seen else 0]
            name = f"top.{EXTENSIONS[fmt]}" if not folder else f"photo-{i}.{EXTENSIONS[fmt]}"
            (root / folder / name).write_bytes(data)
            stem = label if label not in seen else f"{label}-001"
            seen.add(label)
            expected[f"{folder}/{name}".lstrip("/")] = f"{folder}/{stem}.{EXTENSIONS[fmt]}".lstrip("/")
    (root / "a" / "notes.txt").write_text("not an image")
    return expected


@pytest.fixture(scope="module")
def first_run(stack, tmp_path_factory):
    """The tree, sent once with --out in jobs of at most 3 files."""
    root = tmp_path_factory.mktemp("submit")
    expected = draw_tree(root / "photos")
    out = root / "named"
    result = run(str(root / "photos"), "--api", stack.api, "--key", KEY_A, "--out", str(out), "--max-files", "3")
    return root / "photos", out, expected, result


def test_out_gets_every_file_once_in_its_folder(first_run, stack):
    photos, out, expected, result = first_run
    assert result.returncode == 0, result.stdout + result.stderr
    # 1 top-level file, 7 in a/ (3 + 3 + 1), 5 in b/c/ (3 + 2): six jobs, each followed to its end.
    assert "13 images in 6 jobs" in result.stdout, result.stdout
    assert "13 renamed, 0 failed, in 6 jobs" in result.stdout, result.stdout
    assert "13/13 images done" in result.stdout, result.stdout  # plain progress lines: stdout is not a terminal
    # Every image exactly once, in its own folder, under its name (compared by content).
    sources = files_under(photos)
    assert files_under(out) == {expected[relative]: sources[relative] for relative in expected}
    # The local manifest: one record per image, sorted, in the project's record shape.
    lines = (out / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["relative"] for r in records] == sorted(expected)
    for line, record in zip(lines, records):
        FileRecord.model_validate_json(line)
        assert record["status"] == "ok" and "error" not in record, record
        assert record["output"] == expected[record["relative"]], record
        assert record["name"] == record["output"].rsplit("/", 1)[-1]
        assert record["source"] == str(photos / record["relative"])
        assert record["target"] == str(out / record["output"])
    # The jobs were split as asked (the service's limit is higher) and belong to the key's namespace.
    job_ids = set(JOB_ID.findall(result.stdout))
    views = [httpx.get(f"{stack.api}/v1/jobs/{j}", headers=A).json() for j in job_ids]
    assert views and all(view["status"] == "succeeded" for view in views)
    # The client sent each file's path: the service kept its folder in the job's outputs and ZIP.
    folders = [{posixpath.dirname(r["output"]) for r in view["results"]} for view in views]
    assert all(len(job) == 1 for job in folders) and {"", "a"} <= set().union(*folders) <= {"", "a", "b/c"}


def test_a_rerun_duplicates_and_overwrites_nothing(first_run, stack):
    """The same command again: the same jobs (idempotency keys from the files' bytes), every file
    already in OUT counts as done and is left as it was. A file that a user put at one of the names
    in between is never touched: that image takes the next free suffix instead."""
    photos, out, expected, first = first_run
    assert first.returncode == 0, first.stdout + first.stderr
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*")
              if p.is_file() and p.name != "manifest.jsonl"}
    moved_source = sorted(relative for relative in expected if relative.startswith("b/c/"))[0]
    intruder = out / expected[moved_source]
    intruder.unlink()
    intruder.write_bytes(b"the user's own file")

    again = run(str(photos), "--api", stack.api, "--key", KEY_A, "--out", str(out), "--max-files", "3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(JOB_ID.findall(again.stdout)) <= set(JOB_ID.findall(first.stdout)), "the re-run made new jobs"
    assert "6 of them sent before" in again.stdout, again.stdout
    assert "12 were in" in again.stdout, again.stdout
    assert intruder.read_bytes() == b"the user's own file"
    for path, stamp in before.items():  # nothing rewritten
        if path != intruder:
            assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, path
    stem, extension = intruder.name.rsplit(".", 1)
    moved = intruder.with_name(f"{stem}-001.{extension}")
    sources = files_under(photos)
    assert files_under(out) == {**{expected[r]: sources[r] for r in expected},
                                intruder.relative_to(out).as_posix(): b"the user's own file",
                                moved.relative_to(out).as_posix(): sources[moved_source]}
    records = {r["relative"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert records[moved_source]["output"] == moved.relative_to(out).as_posix()
    assert len(records) == len(expected) and all(r["status"] == "ok" for r in records.values())


def test_without_wait_prints_the_jobs_and_they_exist(stack, tmp_path):
    """A folder of more images than the service takes per job (its MAX_FILES_PER_JOB is 50, this
    machine's default 100): the service's 413 says its limit and the client splits to it."""
    count = LIMITS["MAX_FILES_PER_JOB"] + 1
    for i, (data, fmt, _) in enumerate(drawn_files(seed=612, count=count, max_side=80)):
        (tmp_path / "many" / f"{i:03d}.{EXTENSIONS[fmt]}").parent.mkdir(exist_ok=True)
        (tmp_path / "many" / f"{i:03d}.{EXTENSIONS[fmt]}").write_bytes(data)
    result = run(str(tmp_path / "many"), "--api", stack.api, "--key", KEY_A)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split() for line in result.stdout.splitlines() if JOB_ID.match(line)]  # id, URL, folder, count
    assert len(lines) == 2 and all(url == f"{stack.api}/v1/jobs/{job_id}" for job_id, url, *_ in lines), result.stdout
    counts = [httpx.get(url, headers=A).json()["count"] for _, url, *_ in lines]
    assert counts == [LIMITS["MAX_FILES_PER_JOB"], 1]
    assert not (tmp_path / "many" / "manifest.jsonl").exists()


def test_index_counts_on_across_a_folders_jobs_as_rename_numbers_it(stack, tmp_path):
    """`{index}` is a file's position in its folder, as `rename` gives it, also when the folder goes
    as several jobs and one file in the middle is left out (too large): each job starts counting
    where its first file stands (the API's first_index)."""
    drawn = drawn_files(seed=614, count=7, max_side=120)
    expected = {}
    for position, (data, fmt, label) in enumerate(drawn, start=1):
        name = f"photo-{position}.{EXTENSIONS[fmt]}"
        if position == 4:
            data += b"\0" * 300_000  # over this machine's MAX_FILE_BYTES below: never sent
            large = name
        else:
            expected[name] = f"{position:03d}-{label}.{EXTENSIONS[fmt]}"
        (tmp_path / "trip").mkdir(exist_ok=True)
        (tmp_path / "trip" / name).write_bytes(data)
    out = tmp_path / "named"
    result = run(str(tmp_path / "trip"), "--api", stack.api, "--key", KEY_A, "--out", str(out), "--max-files", "3",
                 "--template", "{index}-{subject}", MAX_FILE_BYTES="200000")
    assert result.returncode == 1, result.stdout + result.stderr  # one image failed: the large one
    records = {r["relative"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert {relative: r["output"] for relative, r in records.items() if r["status"] == "ok"} == expected
    assert records[large]["status"] == "error" and "too large" in records[large]["error"], records[large]


@pytest.mark.parametrize("case", ["wrong key", "no key", "unreachable", "missing folder", "no images"])
def test_an_expected_error_is_one_line_exit_2(case, stack, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(drawn_files(seed=613, count=2)[1][0])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not an image")
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    args, words = {
        "wrong key": ([str(tmp_path / "photos"), "--api", stack.api, "--key", "not-a-key"], "refused the API key (401"),
        "no key": ([str(tmp_path / "photos"), "--api", stack.api, "--wait"], "refused the API key (401"),
        "unreachable": ([str(tmp_path / "photos"), "--api", closed, "--out", str(tmp_path / "out")],
                        f"cannot reach the service at {closed}"),
        "missing folder": ([str(tmp_path / "nope"), "--api", stack.api, "--key", KEY_A], "no such folder"),
        "no images": ([str(tmp_path / "notes"), "--api", stack.api, "--key", KEY_A], "no images under"),
    }[case]
    result = run(*args, timeout=120, RENAMER_RAY_API_KEY="")
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    lines = said(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (case, result.stderr)
    assert not (tmp_path / "out").exists()
