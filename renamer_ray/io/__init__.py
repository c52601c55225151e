"""Adapters to the outside world: storage (local + S3 through pyarrow filesystems and boto3)."""
