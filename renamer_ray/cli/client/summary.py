"""The outcome of `submit`: a record per image (the local manifest's lines), the table and the counts."""

from __future__ import annotations

import sys
from pathlib import Path

from renamer_ray.cli.client.api import Api
from renamer_ray.cli.client.sources import Job, Source
from renamer_ray.cli.report import TABLE_ROWS, printable
from renamer_ray.io.storage import LOCAL
from renamer_ray.naming import NamingStyle
from renamer_ray.records.manifest import FileRecord, dump_lines

MANIFEST = "manifest.jsonl"


def record(source: Source, result: dict, style: NamingStyle) -> dict:
    """One line of the local manifest, in the shape of every manifest of the project
    (``manifest.FileRecord``): ``relative`` under DIR, ``output`` under OUT."""
    line = {"source": source.path, "original": source.name, "relative": source.relative,
            "status": "ok" if result.get("status") == "ok" else "error", "size": source.size, "mtime": source.mtime}
    if line["status"] == "ok":
        line.update(name=result.get("name"), raw=result.get("raw"))
        if not style.is_default:
            line["style"] = style.model_dump(exclude_none=True)
    else:
        line["error"] = result.get("error") or "the service gave no reason"
    return {k: v for k, v in line.items() if v is not None}


def failed(line: dict, error: str) -> dict:
    """``line`` (an ``ok`` record) failed after all, with ``error``."""
    return {k: v for k, v in {**line, "status": "error", "error": error}.items()
            if k not in ("name", "raw", "style", "target", "output")}


def results(job: Job) -> list[dict]:
    """One result per file of the job, in upload order; a job that ended without them (failed
    before its manifest) fails each file with the job's reason."""
    final = job.final or {}
    given = final.get("results")
    if isinstance(given, list) and len(given) == len(job.files):
        return given
    reason = final.get("error") or f"the job ended {final.get('status', 'without a result')}"
    return [{"status": "error", "error": f"job {job.job_id}: {reason}"} for _ in job.files]


def images(count: int) -> str:
    return f"{count:,} image{'s' * (count != 1)}"


def print_submitted(api: Api, jobs: list[Job], refused: dict[str, str]) -> int:
    """Without waiting: each job's id, address and folder; the exit status."""
    for job in jobs:
        print(f"{job.job_id}  {api.url}/v1/jobs/{job.job_id}  {job.folder or '.'}/ ({images(len(job.files))}"
              + (", sent before" if job.replayed else "") + ")")
    print(f"{images(sum(len(j.files) for j in jobs))} in {len(jobs)} jobs. Run the same command with --wait or "
          "--out DIR to follow them and fetch the results: the same files give the same jobs, not new ones.")
    return say_refused(refused)


def say_refused(refused: dict[str, str]) -> int:
    for relative, reason in sorted(refused.items())[:TABLE_ROWS]:
        print(f"  {printable(relative)}  ->  FAILED: {printable(reason)}", file=sys.stderr)
    if refused:
        print(f"{images(len(refused))} not sent (reasons above)", file=sys.stderr)
    return 1 if refused else 0


def write_manifest(out: Path, records: list[dict]) -> None:
    """OUT/manifest.jsonl, replaced whole (through a temporary file: a link there is replaced, never
    written through), one ``FileRecord`` per line as every manifest of the project."""
    out.mkdir(parents=True, exist_ok=True)
    with LOCAL.open_output(str(out / MANIFEST)) as stream:
        stream.write(dump_lines(FileRecord(**r) for r in records).encode("utf-8"))


def report(records: list[dict], jobs: list[Job], api: Api, out: Path | None, seconds: float, kept: int) -> int:
    """The table (failures first), the counts and where the reasons are; the exit status."""
    failures = [r for r in records if r["status"] != "ok"]
    shown = sorted(records, key=lambda r: r["status"] == "ok")[:TABLE_ROWS]  # failures first
    width = max([len(printable(r["relative"])) for r in shown] + [8])
    for r in shown:
        new = printable(r.get("output") or r.get("name") or "") if r["status"] == "ok" else \
            f"FAILED: {printable(r['error'])}"
        print(f"  {printable(r['relative']):<{width}}  ->  {new}")
    if len(records) > len(shown):
        print(f"  … and {len(records) - len(shown):,} more" + (" in the manifest" if out else ""))
    print(f"\n{len(records) - len(failures):,} renamed, {len(failures):,} failed, in {len(jobs)} jobs, {seconds:.1f}s"
          + (f"; {kept:,} were in {out} already and were left as they were" if kept else ""))
    where = f"{out / MANIFEST}" if out else "the table above and in each job's results (" + ", ".join(
        f"{api.url}/v1/jobs/{j.job_id}" for j in jobs[:2]) + (", …" if len(jobs) > 2 else "") + ")"
    if out:
        print(f"manifest: {printable(str(out / MANIFEST))}")
    if failures:
        print(f"{len(failures):,} of {images(len(records))} failed; the reasons are in {where}", file=sys.stderr)
        return 1
    return 0
