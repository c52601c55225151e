"""The local stack's S3 and SQS: moto's server embedded on 127.0.0.1, and the buckets and queues that terraform/ makes.

Test fixtures and benchmarks start the same server and provision the same way."""

from __future__ import annotations

import logging

from renamer_ray.config import Settings
from renamer_ray.service.local.ports import free_ports


def start_moto():
    """moto's S3/SQS server mode on a free 127.0.0.1 port, quiet; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def provision(settings: Settings, queue_name: str = "renamer-ray-jobs") -> Settings:
    """Create the buckets, the DLQ (``<queue_name>-dlq``) and the job queue (with its redrive policy)
    as terraform/ does; returns the settings with SQS_QUEUE_URL filled in. Idempotent."""
    from renamer_ray.io.queue import create_job_queue
    from renamer_ray.io.storage import S3Storage, StorageConfig

    s3 = S3Storage(StorageConfig.of(settings))
    for bucket in (settings.s3_in_bucket, settings.s3_out_bucket):
        s3.create_bucket(bucket)
    url = create_job_queue(queue_name, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
                           visibility_timeout=settings.visibility_timeout, max_receives=settings.max_receives)
    return settings.model_copy(update={"sqs_queue_url": url})
