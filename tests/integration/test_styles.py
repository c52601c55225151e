"""Naming styles through the whole pipeline, on a real local Ray and the toy checkpoint: the CLI's
flags, several jobs of different styles in one run (as the service runs them), and `apply`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from renamer_ray.workflow.apply import PlanError, apply_plan
from renamer_ray.cli import main
from renamer_ray.config import load_settings
from renamer_ray.records.manifest import parse_lines
from renamer_ray.naming import NamingStyle, extension_for
from tests.support.images import drawn_files


@pytest.fixture(scope="module")
def settings():
    return load_settings(model_id="toy-shapes", batch_size=4)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, tuple[str, str]]]:
    """Three drawn images, the first one twice: file name (a1, a2, b, c) → (label, extension)."""
    src = tmp_path_factory.mktemp("styles-src")
    drawn = drawn_files(seed=7, count=3, max_side=300)
    expected = {}
    for name, (data, fmt, label) in zip(["a1", "a2", "b", "c"], [drawn[0], drawn[0], drawn[1], drawn[2]]):
        (src / f"{name}.{extension_for(fmt)}").write_bytes(data)
        expected[name] = (label, extension_for(fmt))
    return src, expected


def records(folder: Path) -> dict[str, dict]:
    rows = parse_lines((folder / "manifest.jsonl").read_text())
    return {Path(r.source).stem: r.model_dump(exclude_none=True) for r in rows}


def words(label: str) -> list[str]:
    return label.split("-")


def test_cli_case_snake(ray_local, source, tmp_path, monkeypatch, capsys):
    src, expected = source
    monkeypatch.delenv("MODEL_ID", raising=False)
    assert main(["rename", str(src), str(tmp_path / "out"), "--model", "toy-shapes", "--case", "snake"]) == 0
    names = {source: row["name"] for source, row in records(tmp_path / "out").items()}
    (label, ext), (label_b, ext_b) = expected["a1"], expected["b"]
    assert names["a1"] == f"{'_'.join(words(label))}.{ext}"            # e.g. red_circle.jpg
    assert names["a2"] == f"{'_'.join(words(label))}_001.{ext}"        # the duplicate's suffix is snake too
    assert names["b"] == f"{'_'.join(words(label_b))}.{ext_b}"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*names.values(), "manifest.jsonl"])
    assert records(tmp_path / "out")["a1"]["style"] == {"case": "snake", "max_chars": 60, "max_words": 10}
    assert main(["rename", str(src), str(tmp_path / "x"), "--max-words", "30"]) == 2
    assert "max_words must be a whole number from 1 to 20" in capsys.readouterr().err


def test_jobs_of_several_styles_share_one_run_and_apply_checks_the_plans_style(ray_local, source, settings,
                                                                               tmp_path):
    """One run carries four jobs as the driver builds them: title case; a language with a 5-character
    limit; the same limit in English; the default. The language reaches the model call: with it the
    model writes unconstrained (the whole answer is in `raw`) and the rules fit the name after; without
    it the constraint ends the answer at 5 characters."""
    import ray

    from renamer_ray.pipeline.columns import LISTED, table
    from renamer_ray.pipeline.build import PipelineOptions, build_dataset
    from renamer_ray.pipeline.rows import Wishes, listed_row

    src, expected = source
    jobs = {"title": NamingStyle(case="title"), "french": NamingStyle(max_chars=5, language="French"),
            "short": NamingStyle(max_chars=5), "plain": NamingStyle()}
    files = {name: f"{name}.{ext}" for name, (_, ext) in expected.items()}
    rows = [listed_row(str(src / files[name]), files[name], Wishes(target_root=str(tmp_path / job), style=style),
                       size=1, mtime=None, index=number)
            for job, style in jobs.items() for number, name in enumerate(sorted(expected), start=1)]
    out = build_dataset(ray.data.from_arrow(table(rows, LISTED)), settings, PipelineOptions(dry_run=True))
    results = {(Path(r["target_root"]).name, Path(r["relative"]).stem): r for r in out.iter_rows()}
    (label, ext), (label_b, ext_b) = expected["a1"], expected["b"]
    title = " ".join(w.capitalize() for w in words(label))
    assert results["title", "a1"]["name"] == f"{title}.{ext}"            # e.g. Red Circle.jpg
    assert results["title", "a2"]["name"] == f"{title} 001.{ext}"        # Red Circle 001.jpg
    assert results["plain", "a1"]["name"] == f"{label}.{ext}" and results["plain", "a2"]["name"] == f"{label}-001.{ext}"
    assert results["plain", "a1"]["style"] is None, "the default style is not recorded"
    # The language turned the constraint off: the model's whole answer, cut by the rules after it.
    # Without it the constraint ends the answer at 5 characters: the first word, never a trailing hyphen
    # (the characters after the hyphen are the model's best that fit, not always the start of its word).
    short = results["short", "b"]["raw"]
    assert results["french", "b"]["raw"] == label_b != short and len(short) <= 5
    assert short.startswith(words(label_b)[0]) and not short.endswith("-"), short
    assert results["french", "b"]["name"] == f"{words(label_b)[0][:5]}.{ext_b}", results["french", "b"]
    for job in ("french", "short"):
        assert all(len(results[job, name]["name"].rsplit(".", 1)[0]) <= 5 for name in expected)
    assert json.loads(results["french", "b"]["style"])["language"] == "French"

    # A plan in title case: apply checks it in title case.
    plan = tmp_path / "plan"
    plan.mkdir()
    lines = [json.dumps({"source": r["source"], "name": r["name"], "status": r["status"], "raw": r["raw"],
                         "style": json.loads(r["style"])}) + "\n"
             for (job, _), r in sorted(results.items()) if job == "title"]
    (plan / "manifest.jsonl").write_text("".join(lines))
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(lines).replace(f'"{title}.{ext}"', f'"{title.lower()}.{ext}"'))
    with pytest.raises(PlanError, match="breaks the naming rules .its title style"):
        apply_plan(str(edited), str(tmp_path / "final"), settings)
    summary = apply_plan(str(plan / "manifest.jsonl"), str(tmp_path / "final"), settings)
    assert summary.ok == 4 and (tmp_path / "final" / f"{title} 001.{ext}").read_bytes() == (src / files["a2"]).read_bytes()
