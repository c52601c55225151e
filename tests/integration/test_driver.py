"""The queue driver in this process, on real Ray (local), moto's S3/SQS server and the warm namer
deployed with Ray Serve: failures injected into each driver step, duplicated messages, a queued job
cancelled before it runs, a small job while large ones hold every run slot, and a namer that cannot
be scheduled (the watchdog)."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from pathlib import Path
from contextlib import contextmanager

import boto3
import pytest

from renamer_ray.config import load_settings
from renamer_ray.naming import content_type_for, extension_for
from renamer_ray.pipeline.engines import NamerRef
from renamer_ray.service.driver import Driver
from renamer_ray.service.jobs import JobFile, JobRecord, new_job_id
from renamer_ray.service.local.aws import provision
from tests.e2e.faults.harness import add_row
from tests.support.images import drawn_files
from tests.support.eventually import eventually

TENANT = "tenant-1"


@pytest.fixture(scope="module")
def serve_namer(ray_local):
    """The namer deployment in the test's Ray, holding no CPU so that other tests' pipelines run."""
    from ray import serve

    from renamer_ray.service.namer import bind_namer

    serve.start(proxy_location="Disabled")
    settings = load_settings(model_id="toy-shapes", batch_size=4, namer_num_cpus=0)
    serve.run(bind_namer(settings), name="renamer", route_prefix=None)
    yield
    serve.delete("renamer")


def make_settings(s3_endpoint, **overrides):
    tag = uuid.uuid4().hex[:8]
    base = dict(aws_endpoint_url=s3_endpoint, s3_in_bucket=f"drv-in-{tag}", s3_out_bucket=f"drv-out-{tag}",
                model_id="toy-shapes", batch_size=4, visibility_timeout=6, heartbeat_seconds=2, sqs_wait_seconds=1,
                max_receives=3, max_running=2)
    return provision(load_settings(**{**base, **overrides}), queue_name=f"drv-jobs-{tag}")


@pytest.fixture
def settings(s3_endpoint, serve_namer):
    return make_settings(s3_endpoint)


def enqueue(driver: Driver, seed: int, count: int, *, send: bool = True) -> tuple[JobRecord, list[str]]:
    """A job as the API makes it: inputs in S3, its record, one SQS message."""
    record = JobRecord(job_id=new_job_id(), namespace=TENANT, count=count)
    labels = []
    for number, (data, fmt, label) in enumerate(drawn_files(seed=seed, count=count, max_side=300), start=1):
        file = JobFile(original=f"photo-{number}.{fmt.lower()}", key=f"{number:04d}.{extension_for(fmt)}", size=len(data))
        record.files.append(file)
        driver.store.put_input(record, file, io.BytesIO(data), content_type_for(fmt))
        labels.append(label)
    driver.store.save(record)
    if send:
        driver.queue.send(TENANT, record.job_id)
    return record, labels


@contextmanager
def serving(driver: Driver):
    stop = threading.Event()
    thread = threading.Thread(target=driver.serve_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield driver
    finally:
        stop.set()
        thread.join(timeout=60)


def final(driver: Driver, record: JobRecord, timeout: float = 180) -> JobRecord:
    def finished() -> JobRecord | None:
        now = driver.store.load(record.namespace, record.job_id)
        return now if now.finished else None

    return eventually(finished, f"job {record.job_id} finishes", timeout=timeout, every=0.2)


def s3_client(settings):
    """The test's own look into the buckets."""
    return boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")


def queue_is_empty(settings) -> bool:
    sqs = boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    attributes = sqs.get_queue_attributes(QueueUrl=settings.sqs_queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0


def assert_done_exactly_once(driver: Driver, record: JobRecord, labels: list[str]) -> JobRecord:
    """Succeeded, one correct name per input, every output exactly once, nothing left over."""
    done = final(driver, record)
    assert done.status == "succeeded", done.error
    manifest = driver.store.manifest(done)
    assert [m.original for m in manifest] == [f.original for f in done.files]
    for entry, label in zip(manifest, labels):
        assert entry.status == "ok" and entry.name.startswith(label), (entry, label)
    s3, prefix = s3_client(driver.settings), done.output_prefix + "/"
    # Claims go last, after the final status.
    eventually(lambda: not s3.list_objects_v2(Bucket=driver.store.out_bucket, Prefix=prefix + "_manifest/").get("KeyCount"),
               "the claims are removed", timeout=30)
    listed = s3.list_objects_v2(Bucket=driver.store.out_bucket, Prefix=prefix).get("Contents", [])
    assert sorted(o["Key"].removeprefix(prefix) for o in listed) == sorted(m.name for m in manifest)
    return done


class FailOnce:
    """Wraps one of the driver's own steps: the first call raises, later calls go through."""

    def __init__(self, step):
        self.step, self.calls = step, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected failure")
        return self.step(*args, **kwargs)


def inject(driver: Driver, step: str) -> FailOnce:
    owner, name = {"receive": (driver.queue, "receive"), "accept": (driver, "accept"), "run": (driver.runner, "pipeline"),
                   "finish": (driver.store, "write_manifest"), "release": (driver.queue, "release")}[step]
    wrapper = FailOnce(getattr(owner, name))
    setattr(owner, name, wrapper)
    if step == "release":  # a release happens after a failure: make the run fail once too
        driver.runner.pipeline = FailOnce(driver.runner.pipeline)
    return wrapper


@pytest.mark.parametrize("step", ["receive", "accept", "run", "finish", "release"])
def test_a_failure_in_any_step_is_contained_and_every_job_ends_exactly_once(settings, step):
    driver = Driver(settings, namer=NamerRef())
    jobs = [enqueue(driver, seed=700 + n, count=3) for n in range(2)]
    injected = inject(driver, step)
    with serving(driver):
        for record, labels in jobs:
            assert_done_exactly_once(driver, record, labels)
        assert injected.calls >= 2  # it failed once and the driver went on to call it again
    assert queue_is_empty(settings)


def test_a_duplicated_message_runs_once_and_harms_no_other_job(settings):
    driver = Driver(settings, namer=NamerRef())
    twice, labels = enqueue(driver, seed=720, count=4)
    driver.queue.send(TENANT, twice.job_id)  # the same job queued twice (a client or SQS duplicate)
    other, other_labels = enqueue(driver, seed=721, count=2)
    with serving(driver):
        first = assert_done_exactly_once(driver, twice, labels)
        assert_done_exactly_once(driver, other, other_labels)
        assert first.attempts == 1
    assert queue_is_empty(settings)


def test_a_job_cancelled_while_queued_never_runs(settings):
    driver = Driver(settings, namer=NamerRef())
    record, _ = enqueue(driver, seed=730, count=2)
    driver.store.request_cancel(record)
    kept, labels = enqueue(driver, seed=731, count=1)
    with serving(driver):
        assert_done_exactly_once(driver, kept, labels)
        cancelled = final(driver, record)
    assert cancelled.status == "cancelled" and cancelled.attempts == 0
    assert not s3_client(settings).list_objects_v2(Bucket=driver.store.out_bucket,
                                                   Prefix=record.output_prefix + "/").get("KeyCount")
    assert queue_is_empty(settings)


@contextmanager
def every_slot_held(driver: Driver, seeds: list[int]):
    """Serving, with one three-image job per seed holding a run slot (the driver's MAX_RUNNING
    slots), each run kept from going on until the block ends; yields those jobs. Every job of one
    image runs as usual."""
    release, real_pipeline = threading.Event(), driver.runner.pipeline

    def pipeline(run):
        if any(job.record.count > 1 for job in run.jobs):
            release.wait(timeout=300)
        real_pipeline(run)

    driver.runner.pipeline = pipeline
    large = [enqueue(driver, seed=seed, count=3) for seed in seeds]
    with serving(driver):
        try:
            eventually(lambda: all(driver.store.load(TENANT, record.job_id).status == "running"
                                   for record, _ in large), "the large jobs hold every run slot", timeout=120)
            yield large
            assert all(driver.store.load(TENANT, record.job_id).status == "running" for record, _ in large)
        finally:  # let the large runs go on (before the driver stops, so that a failure here ends cleanly)
            release.set()
        for record, labels in large:
            assert_done_exactly_once(driver, record, labels)


def test_a_one_image_job_finishes_while_large_jobs_hold_every_run_slot(s3_endpoint, serve_namer):
    """Both MAX_RUNNING slots are held by larger jobs, whose runs are kept from ending until the
    one-image job sent after them has finished: it runs at once in the slot kept for small jobs (in
    the driver's lane), and ends before them. (Without that slot it would wait for a run to end,
    and never finish here.)"""
    settings = make_settings(s3_endpoint, max_running=2, max_jobs_per_run=1, small_job_files=1)
    driver = Driver(settings, namer=NamerRef())
    with every_slot_held(driver, [770, 771]) as large:
        small, small_labels = enqueue(driver, seed=772, count=1)
        small_done = assert_done_exactly_once(driver, small, small_labels)
    assert all(small_done.finished_at < driver.store.load(TENANT, record.job_id).finished_at for record, _ in large)
    assert queue_is_empty(settings)


def test_a_lane_whose_process_ended_costs_its_run_nothing_and_is_replaced(s3_endpoint, serve_namer):
    """The lane's process ends between two small runs (as it would for a file whose decoder exits
    it, the memory monitor, or a lost node): the next small job goes through Ray Data instead and
    succeeds exactly once, a new lane is opened, and the job after that runs in the new lane."""
    import ray

    settings = make_settings(s3_endpoint, max_running=1, max_jobs_per_run=1, small_job_files=1)
    driver = Driver(settings, namer=NamerRef())
    reopened, real_reopen = [], driver.runner.reopen_lane

    def reopen_lane():
        reopened.append(driver.runner.lane)
        real_reopen()

    driver.runner.reopen_lane = reopen_lane
    with every_slot_held(driver, [775]):
        first_lane = driver.runner.lane
        assert_done_exactly_once(driver, *enqueue(driver, seed=776, count=1))
        ray.kill(first_lane, no_restart=True)
        assert_done_exactly_once(driver, *enqueue(driver, seed=777, count=1))
        assert reopened == [first_lane] and driver.runner.lane is not first_lane
        assert_done_exactly_once(driver, *enqueue(driver, seed=778, count=1))
        assert len(reopened) == 1, "the new lane took the next run"
    assert queue_is_empty(settings)


def test_a_namer_that_cannot_be_scheduled_fails_the_job_with_the_watchdogs_reason(s3_endpoint, serve_namer):
    """A namer replica that needs an accelerator the cluster does not have (as a GPU deployment does
    when no GPU node can be started): the watchdog gives the run up, the job ends failed with a
    reason a person understands, and the message reaches the DLQ."""
    from ray import serve

    from renamer_ray.service.namer import Namer, namer_problem

    serve.run(Namer.options(ray_actor_options={"num_cpus": 0, "resources": {"absent-accelerator": 1}},
                            autoscaling_config={"min_replicas": 0, "max_replicas": 1, "initial_replicas": 0})
              .bind("toy-shapes", max_pixels=786_432, max_new_tokens=60, batch_size=4),
              name="unschedulable", route_prefix=None)
    try:
        settings = make_settings(s3_endpoint, run_stall_seconds=4, max_receives=1)
        driver = Driver(settings, namer=NamerRef(app="unschedulable"),
                        namer_status=lambda: namer_problem("unschedulable"))
        record, _ = enqueue(driver, seed=740, count=2)
        with serving(driver):
            started = time.monotonic()
            failed = final(driver, record, timeout=120)
            add_row("namer replica never schedulable (no GPU capacity), RUN_STALL_SECONDS=4", runs=failed.attempts,
                    lost=0, duplicated=0, recover_s=None,
                    outcome=f"{failed.status} in {time.monotonic() - started:.0f} s with the watchdog's reason; DLQ")
            sqs = boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
            dlq = sqs.get_queue_url(QueueName=settings.sqs_queue_url.rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
            # The driver's next receive lets SQS move it.
            moved = eventually(lambda: sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"),
                               "the message reaches the DLQ", timeout=60)
        assert failed.status == "failed"
        assert "no namer replica could be scheduled" in failed.error and "gave up after 1 attempts" in failed.error
        assert json.loads(moved[0]["Body"])["job_id"] == record.job_id
    finally:
        serve.delete("unschedulable")


def test_a_bulk_run_can_name_with_the_warm_namer(serve_namer, tmp_path):
    """`renamer-ray rename --namer-service`: the same pipeline, its model stage asking the deployment."""
    from renamer_ray.pipeline.run import RunOptions, run

    source = tmp_path / "in"
    (source / "trip").mkdir(parents=True)
    labels = {}
    for number, (data, fmt, label) in enumerate(drawn_files(seed=750, count=5, max_side=300)):
        path = source / ("trip" if number % 2 else "") / f"IMG_{number}.{extension_for(fmt)}"
        path.write_bytes(data)
        labels[str(path.relative_to(source))] = label
    summary = run(RunOptions(source=str(source), target=str(tmp_path / "out"), namer=NamerRef()),
                  load_settings(model_id="toy-shapes", batch_size=4))
    assert summary.ok == 5 and summary.failed == 0
    for record in summary.records:
        relative = record.source.removeprefix(str(source) + "/")
        assert record.name.startswith(labels[relative]), (record, labels)
        assert record.output == str(Path(relative).parent / record.name).removeprefix("./")
        assert (tmp_path / "out" / record.output).read_bytes() == (source / relative).read_bytes()


def test_a_namer_replica_killed_mid_job_costs_the_job_nothing(settings):
    """Fault: the warm namer's process is SIGKILLed while a job's images are being named (a spot GPU
    node lost). Serve replaces the replica, the run asks again, and the job finishes on its first
    attempt with every name right and every output exactly once."""
    import ray

    def namers() -> list[dict]:
        """This Ray's namer replicas (Serve names its replica actors in the "serve" namespace)."""
        return [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "serve" and "renamer#namer#" in a["name"]]

    driver = Driver(settings, namer=NamerRef())
    record, labels = enqueue(driver, seed=760, count=120)
    with serving(driver):
        now = eventually(lambda: (record_now := driver.store.load(TENANT, record.job_id)).named and record_now,
                         "the job starts naming", timeout=120)
        [victim] = namers()
        ray.kill(ray.get_actor(victim["name"], namespace="serve"))  # the process is killed, as by SIGKILL
        killed = time.monotonic()
        assert now.named < now.count and not now.finished, "the kill must land mid-job"
        done = assert_done_exactly_once(driver, record, labels)
        add_row("namer replica SIGKILLed mid-job (120 files)", runs=done.attempts, lost=0, duplicated=0,
                recover_s=time.monotonic() - killed, outcome=f"{done.status} on attempt {done.attempts}")
    assert done.attempts == 1
    assert namers() and victim not in namers()  # Serve started a new replica


def test_a_failed_runs_reason_is_the_tasks_own_error_in_one_line():
    """A job's ``error`` shows what went wrong, not Ray's wrappers, traceback and colour codes."""
    from ray.data.exceptions import UserCodeException
    from ray.exceptions import RayTaskError

    from renamer_ray.service.driver.lifecycle import reason

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as refused:
            raise UserCodeException("UDF failed") from refused
    except UserCodeException as exc:
        wrapped = RayTaskError("copy_batch", "Traceback (most recent call last):\n  \x1b[36mray::Map\x1b[39m\n",
                               exc).as_instanceof_cause()
    assert reason(wrapped) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert reason(ValueError("a\nb\n")) == "ValueError: b"
