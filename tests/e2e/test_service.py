"""The service end to end over real HTTP: `renamer-ray up` (Ray head, Serve, driver as a Ray job)
against moto's S3/SQS server on 127.0.0.1, with API keys configured."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx

from renamer_ray.service.local.demo import wait
from renamer_ray.service.webhooks import ID_HEADER, verify
from tests.support.http_receiver import Receiver
from tests.support.images import drawn_files
from tests.support.stack import (A, KEY_A, KEY_B, LIMITS, MAX_RECEIVES, STACK_SECRET, images, replica_processes,
                                 status_of, submit)
from tests.support.eventually import eventually

def test_submit_follow_download(stack, s3):
    files, labels = images(seed=401, count=6)
    accepted = submit(stack, files, data={"user_prompt": "the main shape and its colour"})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["status"] == "queued" and body["count"] == 6 and body["job_id"].startswith("jr_")

    progress = []
    final = wait(stack.api, body["job_id"], api_key=KEY_A, timeout=300, show=progress.append)
    assert progress and progress[0]["count"] == 6  # live progress came before the final state
    assert final["status"] == "succeeded" and final["done"] == 6 and final["failed"] == 0
    # Per-file progress: upload order, and a file's state only ever moves forward.
    order = ["waiting", "named", "renamed"]
    for earlier, later in zip(progress, progress[1:] + [final]):
        assert [f["original"] for f in later["files"]] == [name for _, (name, _) in files]
        for before, after in zip(earlier["files"], later["files"]):
            assert order.index(before["state"]) <= order.index(after["state"])
    assert {f["state"] for f in final["files"]} == {"renamed"}

    job = httpx.get(f"{stack.api}/v1/jobs/{body['job_id']}", headers=A).json()
    assert [r["original"] for r in job["results"]] == [name for _, (name, _) in files]
    uploaded = {name: data for _, (name, data) in files}
    for result, label in zip(job["results"], labels):
        assert result["status"] == "ok" and result["name"].startswith(label), (result, label)
        assert result["url"].startswith("http")
        assert httpx.get(result["url"]).content == uploaded[result["original"]]  # byte-identical copy

    archive = httpx.get(f"{stack.api}{job['archive_url']}", headers=A, timeout=60)
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert sorted(zipped.namelist()) == sorted(r["name"] for r in job["results"])
        for r in job["results"]:
            assert zipped.read(r["name"]) == uploaded[r["original"]]

    manifest = [json.loads(line) for line in httpx.get(job["manifest_url"]).text.splitlines()]
    assert [m["original"] for m in manifest] == [r["original"] for r in job["results"]]
    assert all(m["target"].endswith(f"/team-a/jobs/{body['job_id']}/output/{m['name']}") for m in manifest)

    # A finished job's events replay the final state at once.
    replay = wait(stack.api, body["job_id"], api_key=KEY_A, timeout=30)
    assert replay["status"] == "succeeded" and len(replay["results"]) == 6


def test_health_readiness_docs(stack):
    assert httpx.get(f"{stack.api}/health").json() == {"ok": True}
    ready = httpx.get(f"{stack.api}/ready")
    assert ready.status_code == 200 and ready.json() == {"ok": True, "s3": "ok", "sqs": "ok", "driver": "ok"}
    assert "/v1/jobs/rename" in httpx.get(f"{stack.api}/openapi.json").json()["paths"]
    assert httpx.get(f"{stack.api}/docs").status_code == 200


def test_bad_inputs_get_clear_errors(stack, s3):
    png = images(seed=402, count=1)[0][0][1][1]
    cases = {
        "no files": (submit(stack, [("user_prompt", (None, "x"))]), 400, "no files"),
        "not an image": (submit(stack, [("files", ("notes.jpg", b"hello, not an image"))]), 415, "notes.jpg"),
        "too many files": (submit(stack, [("files", (f"{i}.png", png)) for i in range(LIMITS["MAX_FILES_PER_JOB"] + 1)]),
                           413, f"at most {LIMITS['MAX_FILES_PER_JOB']}"),
        "file too large": (submit(stack, [("files", ("big.png", png + b"\0" * LIMITS["MAX_FILE_BYTES"]))]), 413,
                           "big.png"),
        "prompt too long": (submit(stack, [("files", ("a.png", png))], data={"user_prompt": "x" * 401}), 422,
                            "400 characters"),
        "no key": (submit(stack, [("files", ("a.png", png))], headers={}), 401, "API key"),
        "wrong key": (submit(stack, [("files", ("a.png", png))], headers={"X-API-Key": "nope"}), 401, "API key"),
    }
    for case, (response, status, words) in cases.items():
        assert response.status_code == status, (case, response.status_code, response.text)
        assert words in response.json()["detail"], (case, response.text)


def test_job_body_over_the_limit_is_refused_before_it_is_read(stack):
    """A declared body over MAX_JOB_BYTES gets 413 from the headers alone: nothing is sent or stored."""
    import socket

    host, port = stack.api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall((f"POST /v1/jobs/rename HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {KEY_A}\r\n"
                      f"Content-Type: multipart/form-data; boundary=b\r\n"
                      f"Content-Length: {LIMITS['MAX_JOB_BYTES'] * 4}\r\n\r\n").encode())
        answer = conn.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


def test_odd_names_are_data_and_damaged_images_fail_alone(stack, s3):
    files, labels = images(seed=403, count=2)
    truncated = files[0][1][1][: len(files[0][1][1]) // 2]
    sent = [("files", ("../../etc/passwd.png", files[0][1][1])), ("files", ("half.jpg", truncated)),
            ("files", ("\u202eevil\u200f.png", files[1][1][1]))]
    accepted = submit(stack, sent)
    assert accepted.status_code == 200, accepted.text
    job = wait(stack.api, accepted.json()["job_id"], api_key=KEY_A, timeout=300)
    assert job["status"] == "partial" and job["failed"] == 1
    by_original = {r["original"]: r for r in job["results"]}
    assert by_original["../../etc/passwd.png"]["name"].startswith(labels[0])
    assert by_original["evil.png"]["name"].startswith(labels[1])  # control and bidi characters removed
    assert "truncated" in by_original["half.jpg"]["error"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.env["S3_IN_BUCKET"])["Contents"]]
    assert keys and not [k for k in keys if ".." in k or "passwd" in k or "evil" in k]


def test_a_folders_files_keep_their_folders_in_results_manifest_and_zip(stack):
    """Sent with `paths`: each renamed file lands in its folder of the job's output, its manifest
    record and the ZIP; names are unique per folder (one image twice in a/ is suffixed there, in b/
    it is not); the name given stays `original`."""
    (data, _, label), = drawn_files(seed=421, count=1, max_side=300)
    paths = ["trip/a/x.jpg", "trip/a/y.jpg", "trip/b/z.jpg"]
    accepted = submit(stack, [("files", (path.rsplit("/", 1)[1], data)) for path in paths], data={"paths": paths})
    assert accepted.status_code == 200, accepted.text
    job = wait(stack.api, accepted.json()["job_id"], api_key=KEY_A, timeout=300)
    assert job["status"] == "succeeded", job
    assert [r["original"] for r in job["results"]] == ["x.jpg", "y.jpg", "z.jpg"]
    first, second, other = (r["name"] for r in job["results"])
    assert first.startswith(label) and other == first and second != first
    assert second.startswith(first.rsplit(".", 1)[0])  # the de-duplication suffix
    outputs = [f"trip/a/{first}", f"trip/a/{second}", f"trip/b/{other}"]
    assert [r["output"] for r in job["results"]] == outputs
    assert all(httpx.get(r["url"]).content == data for r in job["results"])

    archive = httpx.get(f"{stack.api}{job['archive_url']}", headers=A, timeout=60)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert sorted(zipped.namelist()) == sorted(outputs)
        assert all(zipped.read(output) == data for output in outputs)
    manifest = [json.loads(line) for line in httpx.get(job["manifest_url"]).text.splitlines()]
    assert [(m["original"], m["output"], m["name"]) for m in manifest] == list(zip(
        ["x.jpg", "y.jpg", "z.jpg"], outputs, [first, second, other]))
    assert all(m["target"].endswith(f"/output/{m['output']}") for m in manifest)


def test_other_keys_jobs_are_not_found(stack):
    files, _ = images(seed=404, count=1)
    job_id = submit(stack, files).json()["job_id"]
    assert httpx.get(f"{stack.api}/v1/jobs/{job_id}", headers={"X-API-Key": KEY_B}).status_code == 404
    assert httpx.get(f"{stack.api}/v1/jobs/{job_id}/archive", headers={"X-API-Key": KEY_B}).status_code == 404
    assert httpx.get(f"{stack.api}/v1/jobs/{job_id}", headers=A).status_code == 200
    assert httpx.get(f"{stack.api}/v1/jobs/jr_0000000000000000", headers=A).status_code == 404


def test_twenty_concurrent_submissions_all_finish_right_on_one_warm_namer(stack):
    namers = [p.pid for p in replica_processes(stack, "namer")]
    assert len(namers) == 1
    batches = [images(seed=500 + i, count=2) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        accepted = list(pool.map(lambda batch: submit(stack, batch[0]), batches))
        assert all(a.status_code == 200 for a in accepted), [a.text for a in accepted if a.status_code != 200]
        finals = list(pool.map(lambda a: wait(stack.api, a.json()["job_id"], api_key=KEY_A, timeout=600), accepted))
    for (files, labels), job in zip(batches, finals):
        assert job["status"] == "succeeded", job
        for result, label in zip(job["results"], labels):
            assert result["name"].startswith(label), (result, label)
    assert [p.pid for p in replica_processes(stack, "namer")] == namers  # the model was loaded once, not per run


def test_a_small_job_ends_before_big_ones_that_hold_every_run_slot(stack):
    """Big jobs of one key hold all MAX_RUNNING (4) run slots; a one-image job of another key, sent
    while they all run, runs at once in the slot kept for small jobs (the driver's lane: no Ray Data
    tasks to wait for CPUs behind theirs), shares the namer, and ends before every big one."""
    big_files = [images(seed=410 + n, count=LIMITS["MAX_FILES_PER_JOB"])[0] for n in range(4)]
    with ThreadPoolExecutor(max_workers=len(big_files)) as pool:  # sent together: all four get a slot
        big = [answer.json()["job_id"] for answer in pool.map(lambda files: submit(stack, files), big_files)]
    eventually(lambda: all(status_of(stack, job)["status"] == "running" for job in big), "the big jobs all run")
    files, labels = images(seed=411, count=1)
    small = submit(stack, files, headers={"X-API-Key": KEY_B}).json()["job_id"]
    small_final = wait(stack.api, small, api_key=KEY_B, timeout=300)
    assert small_final["status"] == "succeeded" and small_final["results"][0]["name"].startswith(labels[0])
    assert small_final["results"][0]["preview"], "the lane makes previews as the pipeline does"
    big_final = [wait(stack.api, job, api_key=KEY_A, timeout=600) for job in big]
    assert all(job["status"] == "succeeded" for job in big_final)
    # ISO-8601 UTC stamps of one clock compare as strings.
    assert small_final["finished_at"] < min(job["finished_at"] for job in big_final), "the small job waited"
    assert all(job["created_at"] <= job["started_at"] <= job["finished_at"] for job in big_final + [small_final])


def test_cancel_a_running_job_keeps_what_was_renamed(stack, s3):
    job_id = submit(stack, images(seed=412, count=LIMITS["MAX_FILES_PER_JOB"])[0]).json()["job_id"]
    eventually(lambda: status_of(stack, job_id)["named"] > 0, "the job has named a file")
    answer = httpx.delete(f"{stack.api}/v1/jobs/{job_id}", headers=A)
    assert answer.status_code == 202, answer.text
    final = wait(stack.api, job_id, api_key=KEY_A, timeout=120)
    assert final["status"] == "cancelled"
    assert {f["state"] for f in final["files"]} <= {"renamed", "cancelled"}
    renamed = sorted(r["name"] for r in final["results"] if r["status"] == "ok")
    stopped = [r for r in final["results"] if r["status"] != "ok"]
    assert len(renamed) + len(stopped) == final["count"] == final["done"] + final["cancelled"]
    assert all("cancelled" in r["error"] for r in stopped)
    prefix = f"team-a/jobs/{job_id}/output/"
    listed = s3.list_objects_v2(Bucket=stack.env["S3_OUT_BUCKET"], Prefix=prefix).get("Contents", [])
    copies = [key for o in listed if not (key := o["Key"].removeprefix(prefix)).startswith("_manifest/")]
    assert sorted(copies) == renamed  # the manifest lists every copy (claims under _manifest/ go last)
    assert httpx.delete(f"{stack.api}/v1/jobs/{job_id}", headers=A).status_code == 409


def test_callback_is_delivered_once_signed_after_a_500(stack):
    receiver = Receiver([500])
    try:
        files, _ = images(seed=413, count=1)
        job_id = submit(stack, files, data={"callback_url": receiver.url}).json()["job_id"]
        assert wait(stack.api, job_id, api_key=KEY_A, timeout=300)["status"] == "succeeded"
        eventually(lambda: len(receiver.posts) >= 2, "the callback is retried and delivered", timeout=60)
        headers, body = receiver.posts[-1]
        assert verify(STACK_SECRET, headers, body)  # Standard Webhooks headers, within the replay window
        assert receiver.posts[0][0][ID_HEADER] == headers[ID_HEADER]  # one delivery, retried
        delivered = json.loads(body)
        assert delivered["job_id"] == job_id and delivered["status"] == "succeeded" and delivered["results"]
        assert len(receiver.posts) == 2 and receiver.posts[0][1] == body  # the failed try, then one delivery
    finally:
        receiver.close()


def test_list_shows_the_callers_jobs_newest_first(stack):
    mine = [submit(stack, images(seed=414 + i, count=1)[0]).json()["job_id"] for i in range(2)]
    listed = httpx.get(f"{stack.api}/v1/jobs?limit=2", headers=A).json()
    assert [j["job_id"] for j in listed["jobs"]] == mine[::-1] and listed["next_cursor"]
    assert not set(mine) & {j["job_id"] for j in httpx.get(f"{stack.api}/v1/jobs", headers={"X-API-Key": KEY_B}).json()["jobs"]}


def test_poison_job_lands_in_the_dlq_with_a_failed_status(stack, s3):
    import boto3

    from renamer_ray.service.jobs import JobRecord

    sqs = boto3.client("sqs", endpoint_url=stack.env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    queue_url, dlq_url = (sqs.get_queue_url(QueueName=n)["QueueUrl"] for n in ("renamer-ray-jobs", "renamer-ray-jobs-dlq"))
    # A record an older version might have written: its template names a field that does not exist.
    poison = JobRecord(job_id="jr_" + uuid.uuid4().hex[:16], namespace="team-a", count=1, template="{nonsense}")
    s3.put_object(Bucket=stack.env["S3_OUT_BUCKET"], Key=poison.record_key, Body=poison.model_dump_json())
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"namespace": "team-a", "job_id": poison.job_id}))

    moved = eventually(lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages"),
                       "the poison message reaches the DLQ", timeout=120)
    assert json.loads(moved[0]["Body"])["job_id"] == poison.job_id
    status = httpx.get(f"{stack.api}/v1/jobs/{poison.job_id}", headers=A).json()
    assert status["status"] == "failed" and "template" in status["error"] and f"{MAX_RECEIVES} attempts" in status["error"]


def test_custom_metrics_reach_ray_metrics(stack):
    """The driver's counters are exported with Ray's own metrics (Prometheus format)."""
    def exported() -> bool:
        text = httpx.get(stack.urls["metrics"], timeout=10).text
        return "renamer_images_renamed" in text and "renamer_job_latency_seconds" in text

    # Ray exports metrics every few seconds: poll the exporter.
    eventually(exported, "renamer_* metrics appear at " + stack.urls["metrics"], timeout=90, every=1)
