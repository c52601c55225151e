"""The end-of-run summary: safe to print whatever the file names hold, short whatever the run's size."""

from __future__ import annotations

from renamer_ray.records.manifest import FileRecord
from renamer_ray.pipeline.results import RunSummary
from renamer_ray.cli.report import TABLE_ROWS, print_summary, printable


def test_terminal_escapes_and_bidi_overrides_in_names_are_shown_not_obeyed():
    assert printable("evil\x1b]0;owned\x07.jpg") == "evil\\x1b]0;owned\\x07.jpg"
    assert printable("photo\u202egpj.exe") == "photo\\u202egpj.exe"
    assert printable("café été.jpg") == "café été.jpg"


def test_a_huge_run_prints_a_short_table_failures_first_then_the_counts(capsys):
    records = [FileRecord(source=f"/in/{i:07d}.jpg", target=f"/out/x-{i}.jpg", name=f"x-{i}.jpg", status="ok")
               for i in range(1000)]
    records[700] = FileRecord(source="/in/\x1b[31mred.jpg", status="error", error="truncated \x1b[2J data")
    summary = RunSummary(records=records, skipped=3, seconds=10.0, manifest="/out/manifest.jsonl", source_root="/in",
                         ok=999_999, failed=1)
    print_summary(summary, dry_run=False)
    lines = capsys.readouterr().out.splitlines()
    assert "\x1b" not in "".join(lines)
    assert lines[0].split("->")[1].strip() == "FAILED: truncated \\x1b[2J data"
    assert len([line for line in lines if "->" in line]) == TABLE_ROWS
    assert "  … and 999,950 more in the manifest" in lines
    assert "999,999 renamed, 1 failed, 3 non-image files skipped" in "\n".join(lines)
    assert lines[-1] == "manifest: /out/manifest.jsonl"


def test_a_run_over_several_nodes_says_how_many_images_each_node_named(capsys):
    nodes = {"a" * 56: 3, "b" * 56: 5, "c" * 56: 4}
    summary = RunSummary(records=[], skipped=0, seconds=1.0, manifest="/out/manifest.jsonl", ok=12,
                         named_by_node=nodes)
    print_summary(summary, dry_run=False)
    assert "named on 3 Ray nodes: 5 on bbbbbbbb, 4 on cccccccc, 3 on aaaaaaaa" in capsys.readouterr().out.splitlines()
    print_summary(RunSummary(records=[], skipped=0, seconds=1.0, manifest="/m", ok=3, named_by_node={"a" * 56: 3}),
                  dry_run=False)
    assert "Ray node" not in capsys.readouterr().out
