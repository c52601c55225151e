"""Job callbacks: when a job reaches its final status, its view is POSTed to the job's ``callback_url``,
signed the Standard Webhooks way (``signing.py``), only to a checked public host resolved once
(``target.py``), retried and bounded in time and size (``delivery.py``)."""

from renamer_ray.service.webhooks.delivery import Webhooks
from renamer_ray.service.webhooks.signing import (ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, secret_for, sign,
                                                  signed_headers, verify)
from renamer_ray.service.webhooks.target import CallbackRefused, Target, check_url

__all__ = ["ID_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "CallbackRefused", "Target", "Webhooks", "check_url",
           "secret_for", "sign", "signed_headers", "verify"]
