"""Which waiting jobs run next (pure): fair across tenants, small jobs together, large and retried alone,
and a slot kept for small jobs while large ones hold the others."""

from __future__ import annotations

from hypothesis import given, strategies as st

from renamer_ray.service.scheduling import Waiting, free_slot, next_run


def job(n: int, tenant: str, files: int = 1, retried: bool = False) -> Waiting:
    return Waiting(f"jr_{n:016x}", tenant, files, retried)


def test_a_tenant_without_runs_goes_first_even_if_it_came_later():
    waiting = [job(1, "a"), job(2, "a"), job(3, "b")]
    run = next_run(waiting, {"a": 2}, max_jobs=1, max_files=96)
    assert [j.tenant for j in run] == ["b"]


def test_small_jobs_share_a_run_round_robin_across_tenants():
    waiting = [job(i, "a") for i in range(6)] + [job(10 + i, "b") for i in range(2)] + [job(20, "c")]
    run = next_run(waiting, {}, max_jobs=5, max_files=96)
    assert [j.tenant for j in run] == ["a", "b", "c", "a", "b"]  # a went first: b, c, a, b, …


def test_a_large_job_and_a_retried_job_run_alone():
    assert next_run([job(1, "a", files=500), job(2, "b")], {}, max_jobs=16, max_files=96) == [job(1, "a", files=500)]
    assert next_run([job(1, "a", retried=True), job(2, "a")], {}, max_jobs=16, max_files=96) == [job(1, "a", retried=True)]
    # ... and never join a run of small ones
    run = next_run([job(1, "a"), job(2, "b", files=500), job(3, "c", retried=True), job(4, "d")], {},
                   max_jobs=16, max_files=96)
    assert [j.job_id for j in run] == [job(1, "a").job_id, job(4, "d").job_id]


def test_files_per_run_are_bounded():
    run = next_run([job(i, "a", files=40) for i in range(5)], {}, max_jobs=16, max_files=96)
    assert len(run) == 2


def test_while_large_jobs_hold_every_slot_a_small_job_starts_in_the_slot_kept_for_it():
    waiting = [job(1, "a", files=100), job(2, "a", files=1), job(3, "b", files=13), job(4, "b", files=12)]
    slot = free_slot(waiting, regular_going=4, small_going=False, max_running=4, small_files=12)
    assert slot.small and slot.jobs == [job(2, "a", files=1), job(4, "b", files=12)]
    run = next_run(slot.jobs, {"a": 4}, max_jobs=16, max_files=96)
    assert [j.job_id for j in run] == [job(4, "b").job_id, job(2, "a").job_id]


def test_the_small_slot_holds_one_run_and_large_jobs_wait_for_a_regular_slot():
    small = [job(1, "a", files=1)]
    assert free_slot(small, regular_going=4, small_going=True, max_running=4, small_files=12) is None
    assert free_slot([job(2, "a", files=100)], regular_going=4, small_going=False, max_running=4,
                     small_files=12) is None
    assert free_slot(small, regular_going=4, small_going=False, max_running=4, small_files=0) is None  # no such slot


def test_a_free_regular_slot_takes_any_job():
    waiting = [job(1, "a", files=100), job(2, "b", files=1)]
    slot = free_slot(waiting, regular_going=3, small_going=True, max_running=4, small_files=12)
    assert not slot.small and slot.jobs == waiting


jobs = st.lists(st.builds(job, st.integers(0, 10 ** 6), st.sampled_from("abcd"), st.integers(1, 200), st.booleans()),
                unique_by=lambda w: w.job_id, max_size=40)


@given(jobs, st.dictionaries(st.sampled_from("abcd"), st.integers(0, 3)), st.integers(1, 20), st.integers(1, 150))
def test_every_run_is_valid_and_favours_the_least_served_tenant(waiting, running, max_jobs, max_files):
    run = next_run(waiting, running, max_jobs=max_jobs, max_files=max_files)
    assert bool(run) == bool(waiting)
    if not run:
        return
    assert len({j.job_id for j in run}) == len(run) and all(j in waiting for j in run)
    assert len(run) <= max_jobs
    if len(run) > 1:
        assert sum(j.files for j in run) <= max_files and not any(j.retried for j in run)
    least = min(running.get(j.tenant, 0) for j in waiting)
    assert running.get(run[0].tenant, 0) == least
