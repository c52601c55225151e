"""The service: HTTP ingress (Ray Serve + FastAPI), the SQS queue driver, and the local stack."""
