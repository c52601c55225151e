"""The queue driver: drains SQS and runs jobs as Ray Data pipelines, several at once.

- **Loop** (``loop.py``, :meth:`Driver.serve_forever`): receive messages, accept each into
  ``pending`` (merging duplicate deliveries by job id), and start runs while fewer than MAX_RUNNING
  are going, plus one slot kept for small jobs (SMALL_JOB_FILES). Every step is contained: an
  exception fails only the job it belongs to, or is logged and the loop goes on. What it holds is
  ``held.py``.
- **Runs** (``runs.py``): which slot is free and which jobs run next in it, and which share a run,
  is ``scheduling`` (fair across API keys; small jobs never wait behind large ones). Runs execute
  on their own threads; their model stage asks the warm ``namer`` deployment, so no run starts a model.
- **Lifecycle** (``lifecycle.py``): every status a job takes is a trigger of its record's transition
  (``service/jobs.py``). Completion order: outputs, manifest, final status, delete the message,
  then remove claims. A crash anywhere before the delete makes SQS redeliver; the retry resumes from
  the claims (``pipeline/claims.py``) and a finished job's redelivery is only acknowledged. A failed
  job goes back to the queue with the reason in its status and its retry runs alone; on its last
  receive (MAX_RECEIVES) it is marked ``failed`` and released, and SQS moves the message to the DLQ.
- **Upkeep** (``upkeep.py``, one thread, every second): extends the visibility of every held message
  each HEARTBEAT_SECONDS, publishes per-file progress, stops cancelled jobs, and is the watchdog: a
  run with no progress for RUN_STALL_SECONDS is given up with a reason a person understands.
- **Metrics** (``metrics.py``): exported with Ray's own.
"""

from renamer_ray.service.driver.loop import Driver

__all__ = ["Driver"]
