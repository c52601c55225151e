"""benchmarks/stage_cpu.py's reading of Ray Data's operator stats: fused operators split between
their stages by time share, Ray's own processes beyond the operators; a real run's stats are read in
tests/integration/test_stage_cpu.py."""

from __future__ import annotations

from types import SimpleNamespace

from ray.data._internal.stats import OperatorStatsSummary, StatsSummary

from tests.support.stage_cpu import load_stage_cpu

stage_cpu = load_stage_cpu()


def seconds(total: float) -> StatsSummary:
    return StatsSummary(min=total, max=total, mean=total, sum=total, count=1)


def operator(name: str, cpu: float, stage_times: list[float] | None = None) -> OperatorStatsSummary:
    return OperatorStatsSummary(operator_name=name, is_sub_operator=False, time_total_s=1.0, earliest_start_time=None,
                                latest_end_time=None, block_execution_summary_str="", cpu_time=seconds(cpu),
                                stage_time=[seconds(s) for s in stage_times] if stage_times else None)


def dataset(*ops: OperatorStatsSummary, parents=()) -> SimpleNamespace:
    """The parts of a ``DatasetStatsSummary`` the module reads."""
    return SimpleNamespace(operators_stats=list(ops), parents=list(parents))


def test_fused_operators_are_split_between_their_stages_by_time_share():
    listed = dataset(operator("ReadSourceListing->MapBatches(ReadClaims)->MapBatches(Decode)", 6.0, [1.0, 1.0, 4.0]))
    named = dataset(operator("MapBatches(NameImages)", 3.0), parents=[listed])
    shuffled = dataset(operator("SortSample(partitions=2)", 0.5), operator("ShuffleMap", 0.5), parents=[named])
    last = dataset(operator("MapBatches(Dedupe)->MapBatches(ClaimNames)->MapBatches(CopyFiles)", 4.0, [1.0, 1.0, 2.0]),
                   parents=[shuffled])

    assert stage_cpu.cpu_by_row(last) == {"listing": 1.0, "decode": 5.0, "model step": 3.0,
                                          "rules and de-duplication": 2.0, "claims": 1.0, "copy": 2.0}
    rows = stage_cpu.table(last, images=100, driver_s=1.0, ray_processes_s=19.0)
    assert rows[2] == "| listing | 1.00 | 10.0 | 5% |"
    assert rows[-2].startswith(f"| {stage_cpu.RAY_ROW} | 5.00 |"), "Ray's processes beyond the operators' 14 s"
    assert rows[-1] == "| all of the above | 20.00 | 200.0 | 100% |"


def test_a_fused_operator_without_stage_times_is_kept_whole_and_says_so():
    cpu = stage_cpu.cpu_by_row(dataset(operator("MapBatches(ClaimNames)->MapBatches(CopyFiles)", 2.0),
                                       operator("MapBatches(Somebody)", 1.0)))
    assert cpu == {"claims + copy (fused, not split)": 2.0, "other: Somebody": 1.0}
