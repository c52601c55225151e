"""`renamer-ray submit`: a client of a running service, over its HTTP API (httpx).

It sends the images under a folder as jobs — one folder's files per job (names are unique per job,
so per folder), at most the service's per-job file and byte limits each — follows the jobs' events
with one progress bar for all images, and with ``--out`` downloads each job's ZIP and puts every
renamed file into ``OUT/<the source's folder>/<new name>``: created only, never over another file.
One module per concern: ``options`` (what was asked), ``sources`` (the images, cut into jobs),
``api`` (the HTTP API with its retries), ``upload`` (sending the jobs), ``follow`` (their events),
``downloads`` (placing their files), ``summary`` (records, the table, the counts).

- **Limits.** The API does not publish its limits: a job starts at ``MAX_FILES_PER_JOB``,
  ``MAX_JOB_BYTES`` and ``MAX_FILE_BYTES`` of this machine's settings (``--max-files`` only lowers
  them), and a 413 from the service lowers them to what its sentence names, or halves the job; a
  415 (a file that is not an image) halves the job until the file fails alone with the service's
  reason. Nothing is lost: a file the service refuses is a failed file with a reason.
- **Idempotent.** Each job carries an ``Idempotency-Key`` derived from its files' bytes, folder and
  naming options: a retried upload, or the same command run again within the service's 24 h, gets
  the same job back instead of making another (a replayed job that ended ``failed`` or
  ``cancelled`` is sent again under the next key of a fixed chain).
- **Retries.** Connection errors, timeouts, 502/503/504 are retried with backoff, ``ATTEMPTS``
  times per request; a 429 (too many of this key's jobs in flight) is waited out as its
  ``Retry-After`` says, for up to ``BUSY_SECONDS``.
- **De-duplication across jobs.** Two jobs of one folder may give the same name: the later one's
  file takes the next free suffix (``downloads.Placer``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from renamer_ray.cli.client.api import Api
from renamer_ray.cli.client.downloads import Placer
from renamer_ray.cli.client.follow import Progress, follow_all
from renamer_ray.cli.client.options import KEY_VARIABLE, Options, SubmitError, job_fields, naming
from renamer_ray.cli.client.sources import Job, Limits, list_images
from renamer_ray.cli.client.summary import images, print_submitted, record, report, results, write_manifest
from renamer_ray.cli.client.upload import send_all
from renamer_ray.config import load_settings
from renamer_ray.naming import IMAGE_EXTENSIONS, NamingStyle

__all__ = ["Options", "SubmitError", "submit"]


def submit(options: Options) -> int:
    """`renamer-ray submit`: exit status 0 every image renamed (or, without waiting, submitted), 1
    some failed (each with its reason), 2 a :class:`SubmitError` (said by the caller)."""
    settings = load_settings()
    template, style = naming(options, settings)
    root = Path(options.directory).expanduser()
    if not root.is_dir():
        raise SubmitError(f"no such folder: {options.directory}")
    root = root.resolve()
    out = Path(options.out).expanduser().resolve() if options.out else None
    sources, others = list_images(root, leave_out=out)
    if not sources:
        raise SubmitError(f"no images under {options.directory} ({others} other files; images are "
                          f"{', '.join(sorted(IMAGE_EXTENSIONS))} by extension)")
    if options.max_files is not None and options.max_files < 1:
        raise SubmitError("--max-files must be at least 1")
    limits = Limits(min(settings.max_files_per_job, options.max_files or settings.max_files_per_job),
                    settings.max_job_bytes, settings.max_file_bytes)
    api = Api(options.api, options.key or os.environ.get(KEY_VARIABLE) or None,
              note=lambda text: print(text, file=sys.stderr, flush=True))
    try:
        api.check()
        folders = len({s.folder for s in sources})
        print(f"sending {images(len(sources))} from {folders} folder{'s' * (folders != 1)} of {root} to {api.url}"
              + (f" ({others} other files left out)" if others else ""), flush=True)
        refused: dict[str, str] = {}
        jobs = send_all(api, sources, job_fields(options, template, style), limits, refused)
        if not (options.wait or out):
            return print_submitted(api, jobs, refused)
        shown = ", ".join(j.job_id for j in jobs[:4]) + (", …" if len(jobs) > 4 else "")
        replayed = sum(j.replayed for j in jobs)
        print(f"{images(sum(len(j.files) for j in jobs))} in {len(jobs)} jobs ({shown})"
              + (f"; {replayed} of them sent before, followed again" if replayed else ""), flush=True)
        started = time.monotonic()
        records, kept = _follow_and_fetch(api, jobs, style, out)
        by_relative = {s.relative: s for s in sources}
        records.extend(record(by_relative[relative], {"status": "error", "error": reason}, style)
                       for relative, reason in refused.items())
        records.sort(key=lambda r: r["relative"])
        if out:
            write_manifest(out, records)
        return report(records, jobs, api, out, time.monotonic() - started, kept)
    finally:
        api.close()


def _follow_and_fetch(api: Api, jobs: list[Job], style: NamingStyle, out: Path | None) -> tuple[list[dict], int]:
    """Follow the jobs to their end under one progress bar; with ``out``, place their files as they
    end (in job order). Returns the records of their files and how many were in ``out`` already."""
    with tempfile.TemporaryDirectory(prefix="renamer-ray-submit-") as scratch:
        placer = Placer(out, style, Path(scratch)) if out else None
        records: list[dict] = []

        def finished(i: int) -> None:
            job, given = jobs[i], results(jobs[i])
            if placer is None:
                records.extend(record(s, r, style) for s, r in zip(job.files, given))
                return
            archive = Path(scratch) / f"{job.job_id}.zip"
            try:
                records.extend(placer.place_job(job, given, archive if archive.exists() else None))
            finally:
                archive.unlink(missing_ok=True)

        progress = Progress(sum(len(j.files) for j in jobs))
        try:
            follow_all(api, jobs, progress, finished, Path(scratch) if out else None)
        finally:
            progress.close()
        return records, placer.kept if placer else 0
