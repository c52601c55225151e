"""The table of a job's status moves: every (status, trigger) pair, what an allowed move sets and
that any other is refused leaving the record as it was."""

from __future__ import annotations

import pytest

from renamer_ray.service.jobs import JobFile, JobRecord, TransitionError, Trigger

STATUSES = ("queued", "running", "succeeded", "partial", "failed", "cancelled")
EARLIER = "2020-01-01T00:00:00.000+00:00"

# (status, trigger) → the status it moves to; every pair not here is refused. Written out by hand,
# not read from the code's table, so that a change of the table shows here.
ALLOWED = {
    ("queued", Trigger.STARTED): "running",
    ("running", Trigger.STARTED): "running",      # a driver died mid-run: the redelivery starts again
    ("running", Trigger.FINISHED): "succeeded",   # every file renamed (the counts: below)
    ("running", Trigger.STOPPED): "cancelled",
    ("queued", Trigger.CANCELLED): "cancelled",
    ("running", Trigger.CANCELLED): "cancelled",  # cancelled before this driver ran it
    ("queued", Trigger.RETRIED): "queued",        # an attempt that failed before it started
    ("running", Trigger.RETRIED): "queued",
    ("queued", Trigger.GAVE_UP): "failed",
    ("running", Trigger.GAVE_UP): "failed",
}
WITH_ERROR = {Trigger.RETRIED: "attempt 1 failed, retrying: boom", Trigger.GAVE_UP: "boom (gave up after 3 attempts)"}


def record(status: str, states: tuple[str, ...] = ("renamed", "named")) -> JobRecord:
    """A job in ``status`` whose files are in ``states``, with traces of an earlier attempt."""
    files = [JobFile(original=f"{n}.png", key=f"{n:04d}.png", size=1, state=state) for n, state in enumerate(states)]
    return JobRecord(job_id="jr_0123456789abcdef", namespace="team-a", count=len(files), files=files, status=status,
                     error="an earlier failure", attempts=1, created_at=EARLIER, started_at=EARLIER)


@pytest.mark.parametrize("trigger", list(Trigger), ids=lambda t: t.name)
@pytest.mark.parametrize("status", STATUSES)
def test_every_status_and_trigger(status, trigger):
    job = record(status)
    before = job.model_copy(deep=True)
    if (status, trigger) not in ALLOWED:
        with pytest.raises(TransitionError, match=f"is {status}: {trigger.name}"):
            job.handle_transition(trigger, WITH_ERROR.get(trigger))
        assert job == before
        return
    moved_to = job.handle_transition(trigger, WITH_ERROR.get(trigger))
    assert moved_to == job.status == ALLOWED[status, trigger]
    assert job.error == WITH_ERROR.get(trigger)  # the words of a retry or give-up; any other move clears it
    forgets = trigger in (Trigger.STARTED, Trigger.CANCELLED, Trigger.RETRIED, Trigger.GAVE_UP)
    assert [f.state for f in job.files] == (["waiting", "waiting"] if forgets else ["renamed", "named"])
    if trigger is Trigger.STARTED:
        assert job.attempts == 2 and job.started_at > EARLIER
    else:
        assert job.attempts == 1 and job.started_at == EARLIER
    if job.finished:
        assert job.finished_at is not None and job.finished_at >= job.started_at
    else:
        assert job.finished_at is None
    assert job.created_at == before.created_at


@pytest.mark.parametrize("states, outcome", [
    (("renamed", "renamed"), "succeeded"),
    ((), "succeeded"),
    (("renamed", "failed"), "partial"),
    (("failed", "failed"), "failed"),
])
def test_a_finished_attempts_status_follows_its_files(states, outcome):
    job = record("running", states)
    assert job.handle_transition(Trigger.FINISHED) == job.status == outcome


def test_a_retry_or_give_up_needs_its_reason_and_no_other_move_takes_one():
    for trigger in Trigger:
        job = record("running")
        before = job.model_copy(deep=True)
        wrong = None if trigger in WITH_ERROR else "a reason"
        with pytest.raises(TransitionError, match="error"):
            job.handle_transition(trigger, wrong)
        assert job == before


def test_a_job_goes_round_a_retry_to_its_end():
    """queued → running → queued (retried) → running → partial: two attempts, the last one's times."""
    job = record("queued", ("waiting", "waiting"))
    job.handle_transition(Trigger.STARTED)
    first_start = job.started_at
    job.handle_transition(Trigger.RETRIED, "attempt 1 failed, retrying: boom")
    assert job.status == "queued" and job.finished_at is None and job.started_at == first_start
    job.handle_transition(Trigger.STARTED)
    job.files[0].state, job.files[1].state = "renamed", "failed"
    assert job.handle_transition(Trigger.FINISHED) == "partial"
    assert job.attempts == 3 and job.error is None
    assert job.created_at <= first_start <= job.started_at <= job.finished_at
