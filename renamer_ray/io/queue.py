"""The job queue on SQS (boto3 over HTTP): one small message per job, at-least-once delivery."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import boto3
from botocore.exceptions import ClientError

from renamer_ray.io.storage.retry import boto_config


@dataclass(frozen=True)
class Message:
    namespace: str | None
    job_id: str | None
    handle: str
    receives: int                     # ApproximateReceiveCount: 1 on first delivery
    body: str
    message_id: str = ""              # the same for every delivery of one sent message


# What SQS answers when a receipt handle no longer holds the message (its visibility ran out and it
# was received again, or it was deleted): someone else has it now.
GONE = ("MessageNotInflight", "ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight",
        "InvalidParameterValue")


def is_gone(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in GONE


# The driver's own calls (receive, heartbeats, delete) retry this few times per call: its loop and
# its upkeep retry on their own, and a call that backs off through 8 attempts (up to about a minute
# with "standard" backoff) would hold the loop long after a short outage has ended.
DRIVER_ATTEMPTS = 3


@functools.cache
def sqs_client(region: str | None, endpoint_url: str | None, attempts: int | None = None):
    """A boto3 SQS client per process, endpoint and retry count (None: S3_ATTEMPTS), with the storage
    clients' retry policy."""
    return boto3.client("sqs", region_name=region, endpoint_url=endpoint_url, config=boto_config(attempts))


def create_job_queue(name: str, *, region: str | None, endpoint_url: str | None, visibility_timeout: int,
                     max_receives: int) -> str:
    """Create the DLQ (``<name>-dlq``) and the job queue with its redrive policy (a message received
    ``max_receives`` times goes to the DLQ), as terraform/ does (idempotent); returns the job queue's URL."""
    sqs = sqs_client(region, endpoint_url)
    dlq = sqs.create_queue(QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_timeout), "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})})["QueueUrl"]


class JobQueue:
    """The queue at ``url`` (SQS_QUEUE_URL), reached in ``region`` or at ``endpoint_url``; each call
    makes up to ``attempts`` requests (None: the storage clients' S3_ATTEMPTS)."""

    def __init__(self, url: str | None, *, region: str | None, endpoint_url: str | None, attempts: int | None = None):
        if not url:
            raise ValueError("SQS_QUEUE_URL is not set")
        self.url = url
        self.sqs = sqs_client(region, endpoint_url, attempts)

    def send(self, namespace: str, job_id: str) -> None:
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps({"namespace": namespace, "job_id": job_id}))

    def receive(self, *, max_messages: int, wait_seconds: int, visibility: int) -> list[Message]:
        answer = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max(1, min(10, max_messages)), WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility, MessageSystemAttributeNames=["ApproximateReceiveCount"])
        out = []
        for raw in answer.get("Messages", []):
            try:
                body = json.loads(raw["Body"])
                namespace, job_id = str(body["namespace"]), str(body["job_id"])
            except (ValueError, KeyError, TypeError):
                namespace = job_id = None  # a malformed message: the driver lets it reach the DLQ
            out.append(Message(namespace, job_id, raw["ReceiptHandle"],
                               int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)), raw["Body"],
                               raw.get("MessageId", "")))
        return out

    def extend(self, handle: str, seconds: int) -> None:
        self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=seconds)

    def release(self, handle: str, delay: int = 0) -> None:
        """Give a message back (visible again after ``delay`` seconds) for another attempt."""
        self.extend(handle, delay)

    def delete(self, handle: str) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=handle)

    def depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def ping(self) -> None:
        self.depth()
