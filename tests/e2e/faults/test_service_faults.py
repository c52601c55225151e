"""Faults on the running service: the session's `renamer-ray up` (Ray head, Serve, driver, namer)
against moto's S3/SQS server, reached through a proxy that can be cut. Each case submits real jobs
over HTTP, injects its fault, and checks what the user gets: every upload renamed exactly once with
the right name (compared by content with what was uploaded), and the job's final status."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx

from renamer_ray.service.local.demo import wait
from renamer_ray.service.jobs import now
from tests.e2e.faults.harness import add_row, s3_outputs, tally
from tests.support.stack import KEY_A, KEY_B, images, replica_processes, submit
from tests.support.eventually import eventually

B = {"X-API-Key": KEY_B}


def record(stack, s3, namespace: str, job_id: str) -> dict | None:
    """The job record as the driver last saved it (read from S3, as the API does)."""
    try:
        body = s3.get_object(Bucket=stack.env["S3_OUT_BUCKET"], Key=f"{namespace}/jobs/{job_id}/job.json")["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body.read())


def outcome(stack, s3, job_id: str, files, labels, *, namespace="team-a", api_key=None, timeout=600):
    """Wait for the job's end; (final view, files lost, files duplicated), once its claims are gone."""
    final = wait(stack.api, job_id, api_key=api_key or KEY_A, timeout=timeout)
    bucket, prefix = stack.env["S3_OUT_BUCKET"], f"{namespace}/jobs/{job_id}/output/"
    eventually(lambda: not s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "_manifest/").get("KeyCount"),
               "the job's claims are removed (they go last, after the final status)", timeout=60)
    lost, duplicated = tally([data for _, (_, data) in files], s3_outputs(s3, bucket, prefix))
    if final["status"] == "succeeded":
        for result, label in zip(final["results"], labels):
            assert result["name"].startswith(label), (result, label)
    return final, lost, duplicated


def test_driver_killed_three_times_in_one_job(stack, s3):
    """SIGKILL the driver replica three times, each time once the job's current attempt has named
    something: Serve brings the driver back, SQS redelivers the job, each attempt resumes from the
    claims of the last, and the fourth attempt finishes it — every file once."""
    files, labels = images(seed=420, count=48)
    job_id = submit(stack, files).json()["job_id"]
    first_kill = None
    for attempt in (1, 2, 3):
        def attempt_under_way():
            saved = record(stack, s3, "team-a", job_id) or {}
            drivers = replica_processes(stack, "driver")
            return (saved.get("attempts") == attempt and saved.get("status") == "running"
                    and any(f["state"] != "waiting" for f in saved["files"]) and len(drivers) == 1 and drivers)
        driver = eventually(attempt_under_way, f"attempt {attempt} has named a file", timeout=300)[0]
        driver.send_signal(signal.SIGKILL)
        first_kill = first_kill or time.monotonic()
    final, lost, duplicated = outcome(stack, s3, job_id, files, labels)
    recovered = time.monotonic() - first_kill
    attempts = record(stack, s3, "team-a", job_id)["attempts"]
    add_row("driver SIGKILLed 3 times in one job (48 files)", runs=attempts, lost=lost, duplicated=duplicated,
            recover_s=recovered, outcome=f"{final['status']} on attempt {attempts}")
    assert final["status"] == "succeeded" and final["done"] == 48 and attempts == 4
    assert (lost, duplicated) == (0, 0)
    assert httpx.get(f"{stack.api}/ready").json()["driver"] == "ok"


def test_the_s3_sqs_endpoint_restarting_mid_job_loses_nothing(stack, s3):
    """The S3/SQS endpoint goes away for 5 s while a job copies (connections reset, the port
    refuses), then comes back: reads, claims and copies retry within STORAGE_RETRY_SECONDS, the
    driver's receives and heartbeats retry, and the job succeeds on its first attempt."""
    files, labels = images(seed=421, count=48)
    job_id = submit(stack, files).json()["job_id"]
    bucket, prefix = stack.env["S3_OUT_BUCKET"], f"team-a/jobs/{job_id}/output/"
    eventually(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "_manifest/claims/").get("KeyCount"),
               "the job is copying")
    stack.endpoint.cut()
    cut_at = time.monotonic()
    threading.Event().wait(5)  # the fault's length (the endpoint is down), not a synchronisation
    stack.endpoint.restore()
    final, lost, duplicated = outcome(stack, s3, job_id, files, labels)
    attempts = record(stack, s3, "team-a", job_id)["attempts"]
    add_row("S3/SQS endpoint down 5 s mid-job, then back (48 files)", runs=attempts, lost=lost,
            duplicated=duplicated, recover_s=time.monotonic() - cut_at,
            outcome=f"{final['status']} on attempt {attempts}, {final['failed']} files failed")
    assert final["status"] == "succeeded" and final["failed"] == 0 and attempts == 1, final.get("results")
    assert (lost, duplicated) == (0, 0)


def test_the_same_message_delivered_twice_at_once(stack, s3):
    """A second copy of a job's message (SQS delivers at least once) sent right after the first:
    one run, every file once."""
    files, labels = images(seed=422, count=12)
    job_id = submit(stack, files).json()["job_id"]
    sqs = boto3.client("sqs", endpoint_url=stack.env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    queue_url = sqs.get_queue_url(QueueName="renamer-ray-jobs")["QueueUrl"]
    sent = time.monotonic()
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"namespace": "team-a", "job_id": job_id}))
    final, lost, duplicated = outcome(stack, s3, job_id, files, labels)
    attempts = record(stack, s3, "team-a", job_id)["attempts"]
    add_row("the same job's message delivered twice at once (12 files)", runs=attempts, lost=lost,
            duplicated=duplicated, recover_s=time.monotonic() - sent, outcome=f"{final['status']}, one run")
    assert final["status"] == "succeeded" and attempts == 1 and (lost, duplicated) == (0, 0)
    eventually(lambda: int(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
                           ["ApproximateNumberOfMessages"]) == 0, "the duplicate is acknowledged", timeout=60)


def test_the_api_replica_killed_under_load(stack, s3):
    """Eight clients submit one-image jobs in a loop, each with an Idempotency-Key and retrying on
    any error, as a careful client does; the API replica is SIGKILLed mid-load. Serve replaces it;
    every logical submission ends as exactly one job, renamed once."""
    submissions: list[tuple[str, list, list]] = []   # (idempotency key, files, labels)
    accepted: dict[str, str] = {}                     # idempotency key -> job id
    errors, lock, stop = [], threading.Lock(), threading.Event()
    killed_at: list[float] = []
    recovered_at: list[float] = []
    started = now()  # the API stamps jobs with the same machine's clock

    def client(n: int) -> None:
        seed = 4300 + 100 * n
        while not stop.is_set():
            key, (files, labels) = uuid.uuid4().hex, images(seed=seed, count=1)
            seed += 1
            with lock:
                submissions.append((key, files, labels))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # retry the same submission until it is answered
                try:
                    answer = submit(stack, files, headers={**B, "Idempotency-Key": key})
                    if answer.status_code == 200:
                        with lock:
                            accepted[key] = answer.json()["job_id"]
                            if killed_at and not recovered_at:
                                recovered_at.append(time.monotonic())
                        break
                    errors.append(answer.status_code)
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                stop.wait(0.2)  # a client's pause between retries

    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            pool.submit(client, n)
        eventually(lambda: len(accepted) >= 8, "eight jobs are accepted", timeout=120)
        api = replica_processes(stack, "renamer-api")
        assert len(api) == 1
        api[0].send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())
        eventually(lambda: recovered_at and len(accepted) >= 24, "submissions succeed again", timeout=180)
        stop.set()
    assert len(accepted) == len(submissions), "a submission was never answered"

    lost = duplicated = 0
    statuses = []
    for key, files, labels in submissions:
        final, job_lost, job_duplicated = outcome(stack, s3, accepted[key], files, labels, namespace="team-b",
                                                  api_key=KEY_B)
        statuses.append(final["status"])
        lost, duplicated = lost + job_lost, duplicated + job_duplicated
    # One job per logical submission: nothing the retries sent was run twice.
    listed, cursor = [], ""
    while cursor is not None:
        page = httpx.get(f"{stack.api}/v1/jobs?limit=100{cursor and '&cursor=' + cursor}", headers=B).json()
        listed += [j["job_id"] for j in page["jobs"] if j["created_at"] >= started]
        cursor = page.get("next_cursor") if page["jobs"] and page["jobs"][-1]["created_at"] >= started else None
    assert sorted(listed) == sorted(accepted.values())
    add_row(f"API replica SIGKILLed under load (8 clients, {len(submissions)} jobs)", runs=len(submissions),
            lost=lost, duplicated=duplicated, recover_s=recovered_at[0] - killed_at[0],
            outcome=f"{statuses.count('succeeded')}/{len(statuses)} succeeded; {len(errors)} refused tries, retried")
    assert statuses == ["succeeded"] * len(submissions) and (lost, duplicated) == (0, 0)
    eventually(lambda: [p.pid for p in replica_processes(stack, "renamer-api")] not in ([], [api[0].pid]),
               "Serve runs a new API replica", timeout=60)
