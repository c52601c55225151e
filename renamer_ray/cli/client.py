"""`renamer-ray submit`: a client of a running service, over its HTTP API (httpx).

It sends the images under a folder as jobs — one folder's files per job (names are unique per job,
so per folder), at most the service's per-job file and byte limits each — follows the jobs' events
with one progress bar for all images, and with ``--out`` downloads each job's ZIP and puts every
renamed file into ``OUT/<the source's folder>/<new name>``: created only, never over another file.

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
- **De-duplication across jobs.** Two jobs of one folder may give the same name; the later job's
  file gets the next free suffix in the job's style (``NamingStyle.with_suffix``, as the naming
  core does), skipping names this run placed and names its own job claims; a file already in OUT
  with the same bytes counts as placed (a re-run copies nothing twice), any other is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import queue
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from renamer_ray.naming import IMAGE_EXTENSIONS, NamingStyle, NoRoom
from renamer_ray.cli.progress_bar import ProgressBar

DEFAULT_API = "http://127.0.0.1:8000"
KEY_VARIABLE = "RENAMER_RAY_API_KEY"
ATTEMPTS = 6                       # tries per request for connection errors, timeouts, 502/503/504
BACKOFF_SECONDS = (0.25, 8.0)      # first pause, longest pause (doubling, with jitter)
BUSY_SECONDS = 900                 # how long a 429 (too many jobs in flight) is waited out
FOLLOWERS = 4                      # jobs whose events are followed at once
FIELD_MARGIN = 16 * 1024           # form fields and framing, beside the files, in a job's bytes
TABLE_ROWS = 50
REPLAYS = 5                        # keys tried for one job when earlier ones name failed jobs
GIVE_UP = ("failed", "cancelled")
MANIFEST = "manifest.jsonl"
RETRY_STATUSES = (502, 503, 504)


class SubmitError(Exception):
    """An error a user can act on, said in one line (exit status 2)."""


def _httpx():
    try:
        import httpx
    except ImportError:
        raise SubmitError("talking to the service needs httpx, which this install lacks: "
                          "pip install 'renamer-ray[local]'") from None
    return httpx


# What to send ------------------------------------------------------------------------------------
@dataclass
class Source:
    """An image under DIR: its path relative to DIR (with "/"), where it is, its size, and its
    position among its folder's images sorted by name (``{index}``, as `rename` numbers them)."""

    relative: str
    path: str
    size: int
    mtime: float | None = None
    position: int = 1
    _digest: str | None = None

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.relative)

    @property
    def name(self) -> str:
        return posixpath.basename(self.relative)

    def digest(self) -> str:
        """SHA-256 of the bytes (OSError when the file cannot be read)."""
        if self._digest is None:
            sha = hashlib.sha256()
            with open(self.path, "rb") as stream:
                while chunk := stream.read(1 << 20):
                    sha.update(chunk)
            self._digest = sha.hexdigest()
        return self._digest


def list_images(root: Path, *, leave_out: Path | None = None) -> tuple[list[Source], int]:
    """The images under ``root`` (by extension, as every listing of the project), sorted by path,
    and how many other files there are; ``leave_out`` (OUT inside DIR) is not listed."""
    from renamer_ray.io.storage import LocalStorage

    skip = None
    if leave_out is not None and leave_out.is_relative_to(root) and leave_out != root:
        skip = leave_out.relative_to(root).as_posix() + "/"
    images, others = [], 0
    for listed in LocalStorage().list_files(str(root), recursive=True):
        relative = listed.relative.removeprefix("./")
        if skip and relative.startswith(skip):
            continue
        if posixpath.splitext(relative)[1].lstrip(".").lower() in IMAGE_EXTENSIONS:
            images.append(Source(relative, str(root / relative), listed.size, listed.mtime))
        else:
            others += 1
    images.sort(key=lambda s: s.relative)
    counted: dict[str, int] = defaultdict(int)
    for source in images:
        counted[source.folder] += 1
        source.position = counted[source.folder]
    return images, others


@dataclass
class Limits:
    """What one job may hold; lowered by what the service's 413 sentences say."""

    max_files: int
    max_job_bytes: int
    max_file_bytes: int

    PATTERNS = {"max_files": r"at most ([\d,]+) per job", "max_job_bytes": r"at most ([\d,]+) bytes per job",
                "max_file_bytes": r"at most ([\d,]+) bytes per file"}

    def learn(self, detail: str) -> bool:
        """Lower a limit the service named in a refusal; True if one changed."""
        changed = False
        for name, pattern in self.PATTERNS.items():
            match = re.search(pattern, detail)
            if match and (value := int(match.group(1).replace(",", ""))) < getattr(self, name):
                setattr(self, name, max(1, value))
                changed = True
        return changed

    def too_large(self, source: Source) -> str | None:
        if source.size > self.max_file_bytes:
            return f"too large for the service: at most {self.max_file_bytes:,} bytes per file"
        return None

    def split(self, files: list[Source]) -> list[list[Source]]:
        """``files`` (one folder's, in order) in jobs within the limits, greedily."""
        jobs, current, size = [], [], 0
        for source in files:
            if current and (len(current) >= self.max_files or size + source.size > self.max_job_bytes - FIELD_MARGIN):
                jobs.append(current)
                current, size = [], 0
            current.append(source)
            size += source.size
        return jobs + ([current] if current else [])


@dataclass
class Job:
    files: list[Source]
    job_id: str = ""
    replayed: bool = False
    final: dict | None = None

    @property
    def folder(self) -> str:
        return self.files[0].folder


@dataclass
class Options:
    directory: str
    api: str = DEFAULT_API
    key: str | None = None
    wait: bool = False
    out: str | None = None
    max_files: int | None = None
    prompt: str | None = None
    template: str | None = None
    case: str | None = None           # the naming style's flags; None: its NAME_* setting
    max_chars: int | None = None
    max_words: int | None = None
    language: str | None = None


# The service -------------------------------------------------------------------------------------
def _detail(response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI's request validation: one problem per field
        detail = "; ".join(str(problem.get("msg", problem)) for problem in detail)
    return " ".join(str(detail).split())[:300] or response.reason_phrase


def _pause(attempt: int, retry_after: str | None = None) -> float:
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), 60.0)
    first, longest = BACKOFF_SECONDS
    return min(longest, first * 2 ** attempt) * random.uniform(0.8, 1.2)


class Api:
    """The service's HTTP API, with the retries above; every refusal a user must act on (a bad key,
    an unreachable service) is a :class:`SubmitError`."""

    def __init__(self, url: str, key: str | None, *, note: Callable[[str], None] = print):
        httpx = _httpx()
        self.url = url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise SubmitError(f"--api must be the service's http:// or https:// address, not {url!r}")
        self.http = httpx.Client(base_url=self.url, headers={"X-API-Key": key} if key else {},
                                 timeout=httpx.Timeout(30.0, read=660.0))
        self.transient = (httpx.TransportError,)  # connect, read and write errors, timeouts, protocol errors
        self.note = note
        self._busy_noted = False

    def close(self) -> None:
        self.http.close()

    def _refused_key(self, response) -> SubmitError:
        return SubmitError(f"the service at {self.url} refused the API key ({response.status_code}: "
                           f"{_detail(response)}); pass the right one with --key or {KEY_VARIABLE}")

    def request(self, method: str, path: str, *, what: str, attempts: int = ATTEMPTS,
                files: Callable[[], contextlib.AbstractContextManager] | None = None, **kwargs):
        """One request, retried while the service is unreachable or busy; any other answer is returned
        (401/403 raise). ``files``: a context manager factory giving the multipart files, opened
        afresh for each attempt."""
        started, attempt = time.monotonic(), 0
        while True:
            retry_after = None
            try:
                with files() if files else contextlib.nullcontext() as parts:
                    response = self.http.request(method, path, **({"files": parts} if files else {}), **kwargs)
            except self.transient as exc:
                if attempt + 1 >= attempts:
                    raise SubmitError(f"cannot reach the service at {self.url} ({what}: {type(exc).__name__}: "
                                      f"{exc or 'no answer'}; tried {attempts} times)") from None
            else:
                if response.status_code in (401, 403):
                    raise self._refused_key(response)
                if response.status_code == 429 and time.monotonic() - started < BUSY_SECONDS:
                    retry_after = response.headers.get("retry-after")
                    if not self._busy_noted:
                        self.note(f"the service is busy ({_detail(response)}); waiting as it asks")
                        self._busy_noted = True
                elif response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                    retry_after = response.headers.get("retry-after")
                else:
                    return response
            time.sleep(_pause(min(attempt, 10), retry_after))
            attempt += 1

    def check(self) -> None:
        """Before anything is uploaded: the service answers (a few quick tries: a wrong address is
        said in a second), and takes the key."""
        response = self.request("GET", "/v1/jobs", params={"limit": 1}, what="GET /v1/jobs", attempts=3)
        if response.status_code != 200:
            raise SubmitError(f"no renamer-ray API at {self.url}: GET /v1/jobs answered {response.status_code} "
                              f"({_detail(response)})")

    def submit(self, files: list[Source], fields: dict[str, str], key: str):
        @contextlib.contextmanager
        def opened() -> Iterator[list]:
            with contextlib.ExitStack() as stack:
                yield [("files", (s.name, stack.enter_context(open(s.path, "rb")), "application/octet-stream"))
                       for s in files]

        return self.request("POST", "/v1/jobs/rename", what="POST /v1/jobs/rename", files=opened, data=fields,
                            headers={"Idempotency-Key": key})

    def follow(self, job_id: str, show: Callable[[dict], None], stop: threading.Event) -> dict:
        """The job's final view, from its Server-Sent Events (following again after a ``reconnect``
        event or a dropped stream); ``show`` gets each progress event."""
        failures = 0
        while not stop.is_set():
            heard = False
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=self._events_timeout()) as events:
                    if events.status_code in (401, 403):
                        events.read()
                        raise self._refused_key(events)
                    if events.status_code != 200 and events.status_code not in (429, *RETRY_STATUSES):
                        events.read()
                        raise SubmitError(f"cannot follow job {job_id}: {events.status_code} ({_detail(events)})")
                    kind = None
                    for line in events.iter_lines() if events.status_code == 200 else ():
                        if line.startswith("event:"):
                            kind = line[len("event:"):].strip()
                        elif line.startswith("data:"):
                            heard, data = True, json.loads(line[len("data:"):])
                            if kind == "done":
                                return data
                            if kind == "reconnect":
                                break
                            show(data)
                        if stop.is_set():
                            break
            except self.transient as exc:
                if failures + 1 >= ATTEMPTS:
                    raise SubmitError(f"lost the service at {self.url} while following job {job_id} "
                                      f"({type(exc).__name__}: {exc or 'no answer'}); the job goes on there: run "
                                      "the same command again to follow it") from None
            if heard:
                failures = 0
            else:
                failures += 1
                if failures >= ATTEMPTS:
                    raise SubmitError(f"the events of job {job_id} keep ending without its final state")
                time.sleep(_pause(failures))
        raise SubmitError("stopped")

    def _events_timeout(self):
        return _httpx().Timeout(30.0, read=90.0)  # the service sends a keep-alive every 15 s

    def download(self, job_id: str, target: Path) -> None:
        """The job's ZIP of renamed files, into ``target`` (a download cut off starts again)."""
        for attempt in range(ATTEMPTS):
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/archive") as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code in (401, 403):
                            raise self._refused_key(response)
                        if response.status_code not in (429, *RETRY_STATUSES):
                            raise SubmitError(f"cannot download the files of job {job_id}: {response.status_code} "
                                              f"({_detail(response)})")
                    else:
                        with open(target, "wb") as stream:
                            for chunk in response.iter_bytes(1 << 20):
                                stream.write(chunk)
                        return
            except self.transient as exc:
                if attempt + 1 >= ATTEMPTS:
                    raise SubmitError(f"cannot download the files of job {job_id} from {self.url} "
                                      f"({type(exc).__name__}: {exc or 'no answer'})") from None
            time.sleep(_pause(attempt))
        raise SubmitError(f"cannot download the files of job {job_id}: the service stayed busy")


# Sending ----------------------------------------------------------------------------------------
def _fields(options: Options, template: str, style: NamingStyle) -> dict[str, str]:
    """The form of every job: the template and the whole style, so that the names (and the suffixes
    this client adds) follow this machine's settings and flags, as `rename` does."""
    fields = {"template": template, "case": style.case, "max_chars": str(style.max_chars),
              "max_words": str(style.max_words), "language": style.language or "en"}
    if options.prompt:
        fields["user_prompt"] = options.prompt
    return fields


def _job_key(files: list[Source], fields: dict[str, str], replay: int) -> str:
    identity = json.dumps({"fields": fields, "folder": files[0].folder,
                           "files": [[s.name, s.size, s.digest()] for s in files]}, sort_keys=True)
    key = "renamer-ray-submit-" + hashlib.sha256(identity.encode()).hexdigest()
    return key if replay == 0 else f"{key}-{replay + 1}"


def consecutive(files: list[Source]) -> list[list[Source]]:
    """``files`` (one folder's, in order) in runs of consecutive positions: the service numbers a
    job's files on from its ``first_index``, so a job holds no gap."""
    runs: list[list[Source]] = []
    for source in files:
        if runs and source.position == runs[-1][-1].position + 1:
            runs[-1].append(source)
        else:
            runs.append([source])
    return runs


def send_all(api: Api, sources: list[Source], fields: dict[str, str], limits: Limits,
             refused: dict[str, str]) -> list[Job]:
    """Submit every folder's files in jobs within ``limits``, in order; files the service refuses
    (alone) go into ``refused`` (relative path → reason)."""
    by_folder: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        by_folder[source.folder].append(source)
    pending: deque[list[Source]] = deque()
    for folder in sorted(by_folder):
        pending.extend(limits.split(by_folder[folder]))
    jobs = []
    while pending:
        files = pending.popleft()
        fits = []
        for source in files:
            if reason := limits.too_large(source):
                refused[source.relative] = reason
                continue
            try:
                source.digest()
            except OSError as exc:
                refused[source.relative] = f"cannot be read: {exc.strerror or exc}"
                continue
            fits.append(source)
        if not fits:
            continue
        if len(parts := limits.split(fits)) > 1:  # the limits were lowered since it was planned
            pending.extendleft(reversed(parts))
            continue
        if len(parts := consecutive(fits)) > 1:  # a file left out: the job's {index} numbers go on after it
            pending.extendleft(reversed(parts))
            continue
        job_fields = fields if fits[0].position == 1 else {**fields, "first_index": str(fits[0].position)}
        try:
            for replay in range(REPLAYS):
                response = api.submit(fits, job_fields, _job_key(fits, job_fields, replay))
                if response.status_code != 200:
                    break
                accepted = response.json()
                if accepted["status"] not in GIVE_UP or response.headers.get("idempotent-replayed") != "true":
                    break
        except OSError as exc:  # a file vanished or became unreadable since it was read: it fails alone
            gone = [s for s in fits if s.path == exc.filename] or fits[:1]
            refused[gone[0].relative] = f"cannot be read: {exc.strerror or exc}"
            pending.appendleft([s for s in fits if s is not gone[0]])
            continue
        if response.status_code == 200:
            jobs.append(Job(fits, accepted["job_id"], response.headers.get("idempotent-replayed") == "true"))
        elif response.status_code in (413, 415):
            detail = _detail(response)
            if len(fits) == 1:
                refused[fits[0].relative] = f"refused by the service: {detail}"
            elif limits.learn(detail) and len(limits.split(fits)) > 1:
                pending.appendleft(fits)
            else:  # one file the service will not take: halve until it is alone
                pending.extendleft([fits[len(fits) // 2:], fits[:len(fits) // 2]])
        else:
            raise SubmitError(f"the service refused the job ({response.status_code}): {_detail(response)}")
    return jobs


# Showing progress -------------------------------------------------------------------------------
class Progress:
    """One bar for every image of the jobs (``progress_bar.ProgressBar``)."""

    def __init__(self, total: int, stream=None):
        self.total, self.bar = total, ProgressBar("done", stream)

    def update(self, done: int, named: int, failed: int) -> None:
        self.bar.show(done, self.total, f"{named} named, {failed} failed")

    def close(self) -> None:
        self.bar.close()


def follow_all(api: Api, jobs: list[Job], progress: Progress, on_done: Callable[[int], None],
               archives: Path | None) -> None:
    """Follow every job's events, FOLLOWERS at a time in order, keeping ``progress`` up to date;
    ``on_done(i)`` runs in this thread, in job order, once job i and every job before it ended (with
    ``archives``: after its ZIP is in ``archives/<job id>.zip``)."""
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(jobs)):
        todo.put(i)
    events: queue.Queue[tuple] = queue.Queue()
    stop = threading.Event()

    def follower() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                final = api.follow(jobs[i].job_id, lambda data, i=i: events.put(("progress", i, data)), stop)
                if archives is not None and any(r.get("status") == "ok" for r in final.get("results") or ()):
                    api.download(jobs[i].job_id, archives / f"{jobs[i].job_id}.zip")
                events.put(("done", i, final))
            except BaseException as exc:  # handed to the main thread, which says it or raises it
                events.put(("error", i, exc))
                return

    for _ in range(min(FOLLOWERS, len(jobs))):
        threading.Thread(target=follower, daemon=True).start()
    counts = [(0, 0, 0)] * len(jobs)
    ended, placed = [False] * len(jobs), 0
    try:
        while placed < len(jobs):
            try:
                kind, i, data = events.get(timeout=0.5)  # a timeout, so that Ctrl-C is heard at once
            except queue.Empty:
                continue
            if kind == "error":
                raise data
            counts[i] = (data.get("done", 0), data.get("named", 0), data.get("failed", 0))
            if kind == "done":
                jobs[i].final, ended[i] = data, True
            progress.update(*(sum(c[k] for c in counts) for k in range(3)))
            while placed < len(jobs) and ended[placed]:
                on_done(placed)
                placed += 1
    finally:
        stop.set()


# Placing the files ------------------------------------------------------------------------------
def _usable(name: object) -> bool:
    """A name from the service that can only ever be a file name in its folder."""
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and not name.startswith(".")
            and not any(ch in name for ch in "/\\\0"))


def _stem(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if dot and stem else (name, "")


class Placer:
    """Puts renamed files into OUT/<folder>/<name>, create-only (``LocalStorage.copy``: a symbolic
    link is never followed, a different file never replaced, the same bytes count as done)."""

    def __init__(self, out: Path, style: NamingStyle, scratch: Path):
        from renamer_ray.io.storage import LOCAL

        self.out, self.style, self.scratch, self.storage = out, style, scratch, LOCAL
        self.taken: dict[str, set[str]] = defaultdict(set)  # folder -> lowercase stems placed by this run
        self.kept = 0                                        # files found already in OUT, identical

    def _base(self, stem: str, claimed: dict[str, str]) -> str:
        """The stem a suffixed name of this job was made from (``red-circle`` for ``red-circle-001``
        when the job also named a ``red-circle``), so that a second suffix replaces the first."""
        for lower, original in claimed.items():
            rest = stem[len(original):]
            if stem.lower().startswith(lower) and rest[-3:].isdigit() and rest[-3:] != "000":
                with contextlib.suppress(NoRoom, ValueError):
                    if self.style.with_suffix(original, int(rest.lstrip(" -_") or 0)) == stem:
                        return original
        return stem

    def place_job(self, job: Job, results: list[dict], archive: Path | None) -> list[dict]:
        """The job's records (``results`` line up with ``job.files``), its renamed files placed."""
        from renamer_ray.io.storage import STORAGE_ERRORS, Location, TargetExists

        folder = job.folder
        claimed = {_stem(r["name"])[0].lower(): _stem(r["name"])[0] for r in results
                   if r.get("status") == "ok" and _usable(r.get("name"))}
        taken, records = self.taken[folder], []
        with zipfile.ZipFile(archive) if archive else contextlib.nullcontext() as zipped:
            for source, result in zip(job.files, results):
                record = _record(source, result, self.style)
                if record["status"] != "ok":
                    records.append(record)
                    continue
                name = result["name"]
                if not _usable(name) or zipped is None:
                    records.append(_failed(record, f"the service gave no usable file ({name!r})"))
                    continue
                member = self.scratch / "member"
                try:
                    with zipped.open(name) as data, open(member, "wb") as stream:
                        shutil.copyfileobj(data, stream)
                except KeyError:
                    records.append(_failed(record, f"{name!r} is missing from the job's archive"))
                    continue
                stem, extension = _stem(name)
                base, number, placed = self._base(stem, claimed), 0, None
                try:
                    os.makedirs(self.out / folder, exist_ok=True)
                except OSError as exc:  # a file where the folder belongs
                    records.append(_failed(record, f"cannot make the folder {self.out / folder}: {exc}"))
                    continue
                while placed is None:
                    try:
                        candidate = stem if number == 0 else self.style.with_suffix(base, number)
                    except NoRoom as exc:
                        records.append(_failed(record, f"no free name for {name!r} in {folder or '.'}/: {exc}"))
                        break
                    number += 1
                    if candidate.lower() in taken or (candidate != stem and candidate.lower() in claimed):
                        continue
                    target = self.out / folder / (candidate + extension)
                    existed = os.path.lexists(target)
                    try:
                        self.storage.copy(Location(self.storage, str(member), str(member)), str(target))
                    except TargetExists:
                        continue  # somebody else's file, or a link: left alone, next suffix
                    except STORAGE_ERRORS as exc:
                        records.append(_failed(record, f"cannot write {target}: {exc}"))
                        break
                    taken.add(candidate.lower())
                    self.kept += existed
                    placed = candidate + extension
                if placed is not None:
                    relative = posixpath.join(folder, placed)
                    records.append({**record, "target": str(self.out / relative), "output": relative, "name": placed})
        return records


def _record(source: Source, result: dict, style: NamingStyle) -> dict:
    """One line of the local manifest, in the shape of every manifest of the project
    (``manifest.FileRecord``): ``relative`` under DIR, ``output`` under OUT."""
    record = {"source": source.path, "original": source.name, "relative": source.relative,
              "status": "ok" if result.get("status") == "ok" else "error", "size": source.size, "mtime": source.mtime}
    if record["status"] == "ok":
        record.update(name=result.get("name"), raw=result.get("raw"))
        if not style.is_default:
            record["style"] = style.model_dump(exclude_none=True)
    else:
        record["error"] = result.get("error") or "the service gave no reason"
    return {k: v for k, v in record.items() if v is not None}


def _failed(record: dict, error: str) -> dict:
    return {k: v for k, v in {**record, "status": "error", "error": error}.items()
            if k not in ("name", "raw", "style", "target", "output")}


def _results(job: Job) -> list[dict]:
    """One result per file of the job, in upload order; a job that ended without them (failed
    before its manifest) fails each file with the job's reason."""
    final = job.final or {}
    results = final.get("results")
    if isinstance(results, list) and len(results) == len(job.files):
        return results
    reason = final.get("error") or f"the job ended {final.get('status', 'without a result')}"
    return [{"status": "error", "error": f"job {job.job_id}: {reason}"} for _ in job.files]


# The command ------------------------------------------------------------------------------------
def submit(options: Options) -> int:
    """`renamer-ray submit`: exit status 0 every image renamed (or, without waiting, submitted), 1
    some failed (each with its reason), 2 a :class:`SubmitError` (said by the caller)."""
    from renamer_ray.config import load_settings

    _httpx()
    settings = load_settings()
    template, style = _naming(options, settings)
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
        print(f"sending {_images(len(sources))} from {folders} folder{'s' * (folders != 1)} of {root} to {api.url}"
              + (f" ({others} other files left out)" if others else ""), flush=True)
        refused: dict[str, str] = {}
        jobs = send_all(api, sources, _fields(options, template, style), limits, refused)
        if not (options.wait or out):
            return _print_submitted(api, jobs, refused)
        shown = ", ".join(j.job_id for j in jobs[:4]) + (", …" if len(jobs) > 4 else "")
        replayed = sum(j.replayed for j in jobs)
        print(f"{_images(sum(len(j.files) for j in jobs))} in {len(jobs)} jobs ({shown})"
              + (f"; {replayed} of them sent before, followed again" if replayed else ""), flush=True)
        started = time.monotonic()
        records, kept = _follow_and_fetch(api, jobs, style, out)
        by_relative = {s.relative: s for s in sources}
        records.extend(_record(by_relative[relative], {"status": "error", "error": reason}, style)
                       for relative, reason in refused.items())
        records.sort(key=lambda r: r["relative"])
        if out:
            _write_manifest(out, records)
        return _report(records, jobs, api, out, time.monotonic() - started, kept)
    finally:
        api.close()


def _naming(options: Options, settings) -> tuple[str, NamingStyle]:
    """The template and the style, each flag over its NAME_* setting as in `rename`; said in one
    line before anything is sent."""
    from renamer_ray.naming import NameTemplate, StyleError, TemplateError

    template = options.template or settings.name_template
    try:
        NameTemplate.parse(template)
    except TemplateError as exc:
        raise SubmitError(f"invalid template: {exc}") from None
    wished = dict(case=options.case, max_chars=options.max_chars, max_words=options.max_words,
                  language=options.language)
    try:
        style = NamingStyle.parse(**{**dict(settings.naming_style), **{k: v for k, v in wished.items() if v is not None}})
    except StyleError as exc:
        raise SubmitError(f"invalid naming style: {exc}") from None
    return template, style


def _follow_and_fetch(api: Api, jobs: list[Job], style: NamingStyle, out: Path | None) -> tuple[list[dict], int]:
    """Follow the jobs to their end under one progress bar; with ``out``, place their files as they
    end (in job order). Returns the records of their files and how many were in ``out`` already."""
    with tempfile.TemporaryDirectory(prefix="renamer-ray-submit-") as scratch:
        placer = Placer(out, style, Path(scratch)) if out else None
        records: list[dict] = []

        def finished(i: int) -> None:
            job, results = jobs[i], _results(jobs[i])
            if placer is None:
                records.extend(_record(s, r, style) for s, r in zip(job.files, results))
                return
            archive = Path(scratch) / f"{job.job_id}.zip"
            try:
                records.extend(placer.place_job(job, results, archive if archive.exists() else None))
            finally:
                archive.unlink(missing_ok=True)

        progress = Progress(sum(len(j.files) for j in jobs))
        try:
            follow_all(api, jobs, progress, finished, Path(scratch) if out else None)
        finally:
            progress.close()
        return records, placer.kept if placer else 0


def _images(count: int) -> str:
    return f"{count:,} image{'s' * (count != 1)}"


def _print_submitted(api: Api, jobs: list[Job], refused: dict[str, str]) -> int:
    for job in jobs:
        print(f"{job.job_id}  {api.url}/v1/jobs/{job.job_id}  {job.folder or '.'}/ ({_images(len(job.files))}"
              + (", sent before" if job.replayed else "") + ")")
    print(f"{_images(sum(len(j.files) for j in jobs))} in {len(jobs)} jobs. Run the same command with --wait or "
          "--out DIR to follow them and fetch the results: the same files give the same jobs, not new ones.")
    return _say_refused(refused)


def _say_refused(refused: dict[str, str]) -> int:
    from renamer_ray.cli.report import printable

    for relative, reason in sorted(refused.items())[:TABLE_ROWS]:
        print(f"  {printable(relative)}  ->  FAILED: {printable(reason)}", file=sys.stderr)
    if refused:
        print(f"{_images(len(refused))} not sent (reasons above)", file=sys.stderr)
    return 1 if refused else 0


def _write_manifest(out: Path, records: list[dict]) -> None:
    """OUT/manifest.jsonl, replaced whole (through a temporary file: a link there is replaced, never
    written through), one ``FileRecord`` per line as every manifest of the project."""
    from renamer_ray.io.storage import LOCAL
    from renamer_ray.records.manifest import FileRecord, dump_lines

    out.mkdir(parents=True, exist_ok=True)
    with LOCAL.open_output(str(out / MANIFEST)) as stream:
        stream.write(dump_lines(FileRecord(**r) for r in records).encode("utf-8"))


def _report(records: list[dict], jobs: list[Job], api: Api, out: Path | None, seconds: float, kept: int) -> int:
    from renamer_ray.cli.report import printable

    failed = [r for r in records if r["status"] != "ok"]
    shown = sorted(records, key=lambda r: r["status"] == "ok")[:TABLE_ROWS]  # failures first
    width = max([len(printable(r["relative"])) for r in shown] + [8])
    for r in shown:
        new = printable(r.get("output") or r.get("name") or "") if r["status"] == "ok" else \
            f"FAILED: {printable(r['error'])}"
        print(f"  {printable(r['relative']):<{width}}  ->  {new}")
    if len(records) > len(shown):
        print(f"  … and {len(records) - len(shown):,} more" + (" in the manifest" if out else ""))
    print(f"\n{len(records) - len(failed):,} renamed, {len(failed):,} failed, in {len(jobs)} jobs, {seconds:.1f}s"
          + (f"; {kept:,} were in {out} already and were left as they were" if kept else ""))
    where = f"{out / MANIFEST}" if out else "the table above and in each job's results (" + ", ".join(
        f"{api.url}/v1/jobs/{j.job_id}" for j in jobs[:2]) + (", …" if len(jobs) > 2 else "") + ")"
    if out:
        print(f"manifest: {printable(str(out / MANIFEST))}")
    if failed:
        print(f"{len(failed):,} of {_images(len(records))} failed; the reasons are in {where}", file=sys.stderr)
        return 1
    return 0
