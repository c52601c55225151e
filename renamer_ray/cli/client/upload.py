"""Sending the images as jobs: one folder's files per job, idempotent, split again as the service refuses."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque

from renamer_ray.cli.client.api import Api, detail
from renamer_ray.cli.client.options import SubmitError
from renamer_ray.cli.client.sources import Job, Limits, Source, consecutive
from renamer_ray.records.trust import UntrustedPath
from renamer_ray.service.uploads import checked_path

REPLAYS = 5                        # keys tried for one job when earlier ones name failed jobs
GIVE_UP = ("failed", "cancelled")


def job_key(files: list[Source], fields: dict[str, str], replay: int) -> str:
    """The job's Idempotency-Key, from its files' bytes, folder and form; ``replay`` > 0: the next
    key of the chain, for a job whose earlier keys name jobs that ended failed or cancelled."""
    identity = json.dumps({"fields": fields, "folder": files[0].folder,
                           "files": [[s.name, s.size, s.digest()] for s in files]}, sort_keys=True)
    key = "renamer-ray-submit-" + hashlib.sha256(identity.encode()).hexdigest()
    return key if replay == 0 else f"{key}-{replay + 1}"


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
            try:  # the service would refuse the whole job for it
                checked_path(source.relative)
            except UntrustedPath as exc:
                refused[source.relative] = f"its path {exc}"
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
                response = api.submit(fits, job_fields, job_key(fits, job_fields, replay))
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
            said = detail(response)
            if len(fits) == 1:
                refused[fits[0].relative] = f"refused by the service: {said}"
            elif limits.learn(said) and len(limits.split(fits)) > 1:
                pending.appendleft(fits)
            else:  # one file the service will not take: halve until it is alone
                pending.extendleft([fits[len(fits) // 2:], fits[:len(fits) // 2]])
        else:
            raise SubmitError(f"the service refused the job ({response.status_code}): {detail(response)}")
    return jobs
