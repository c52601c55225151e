"""Real parts in this process: moto's S3/SQS server on 127.0.0.1, a local Ray, the toy model, the API in-process."""
