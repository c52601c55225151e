"""The throughput benchmark's CPU per stage (benchmarks/stage_cpu.py) read from a real run's Ray Data
stats: every stage of the pipeline found under its own row, none left unnamed or unsplit."""

from __future__ import annotations

from ray.data import DataContext

from renamer_ray.cli import SAMPLES
from renamer_ray.config import load_settings
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import SAMPLES_EXPECTED as EXPECTED
from tests.support.stage_cpu import load_stage_cpu

stage_cpu = load_stage_cpu()


def test_each_stage_of_a_run_gets_its_own_cpu(ray_local, tmp_path, monkeypatch):
    monkeypatch.setattr(DataContext.get_current(), "per_stage_map_timing", True)
    stats = []
    summary = run(RunOptions(source=str(SAMPLES), target=str(tmp_path / "dst")),
                  load_settings(model_id="toy-shapes", batch_size=4), on_stats=stats.append)
    assert summary.ok == len(EXPECTED) and len(stats) == 1, "the stats come once, after every row"

    names = [op.operator_name for op in stage_cpu.operators(stats[0])]
    assert any("MapBatches(ReadClaims)->MapBatches(Decode)" in name for name in names), \
        f"claims are read in the decode task (one task per batch, not two): {names}"
    cpu = stage_cpu.cpu_by_row(stats[0])
    assert set(cpu) == set(stage_cpu.ROWS), "every operator is a known stage, fused ones split between theirs"
    assert all(seconds > 0 for seconds in cpu.values()), cpu
    lines = stage_cpu.table(stats[0], summary.ok, driver_s=0.5)
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:]] == [
        *stage_cpu.ROWS, stage_cpu.DRIVER_ROW, "all of the above"]
    assert lines[-1].endswith("| 100% |")
