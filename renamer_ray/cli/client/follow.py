"""Following the jobs to their end: FOLLOWERS event streams at a time, one progress bar for every image."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable

from renamer_ray.cli.client.api import Api
from renamer_ray.cli.client.sources import Job
from renamer_ray.cli.progress_bar import ProgressBar

FOLLOWERS = 4                      # jobs whose events are followed at once


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
