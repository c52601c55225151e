"""The run's manifest writer at scale: sorted parts merged with a bounded number of files open at
once (10⁷ records are 1,000 parts, past a common limit of 1,024 open files), the same manifest as
one merge of everything."""

from __future__ import annotations

import json
import random

from renamer_ray.io.storage import open_location
from renamer_ray.pipeline import results as results_module
from renamer_ray.pipeline.results import Results
from renamer_ray.records.manifest import FileRecord


def test_many_parts_merge_in_bounded_groups_into_one_sorted_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(results_module, "PART_ROWS", 7)     # 300 records: 43 parts
    monkeypatch.setattr(results_module, "MERGE_FAN_IN", 4)  # merged 4 at a time: 43 → 11 → 3
    opened_at_once, open_now = [0], [0]
    real_read_lines = results_module.read_lines

    def counted(location):
        open_now[0] += 1
        opened_at_once[0] = max(opened_at_once[0], open_now[0])
        try:
            yield from real_read_lines(location)
        finally:
            open_now[0] -= 1

    monkeypatch.setattr(results_module, "read_lines", counted)
    sources = [f"/src/{n:05d}.png" for n in range(300)]
    random.Random(7).shuffle(sources)
    target = open_location(str(tmp_path / "dst"))
    results = Results(target)
    for source in sources:
        results.add({"source": source, "status": "ok", "name": "x.png", "kept": False, "pinned": None, "node": None})
    manifest = target.join("manifest.jsonl")
    results.write_manifest(manifest, None, "/src")

    written = [json.loads(line)["source"] for line in (tmp_path / "dst" / "manifest.jsonl").read_text().splitlines()]
    assert written == sorted(sources)
    assert opened_at_once[0] <= 4
    assert [FileRecord.model_validate_json(line).status for line in
            (tmp_path / "dst" / "manifest.jsonl").read_text().splitlines()] == ["ok"] * 300
    results.clean_up(plan_only=False)
    assert not (tmp_path / "dst" / "_manifest").exists()
