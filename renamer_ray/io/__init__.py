"""Adapters to the outside world, and the only code that talks to AWS (boto3, pyarrow's S3):
storage/ (files, local or on S3, behind one interface) and queue.py (the job queue on SQS)."""
