"""Names an interrupted attempt of the same run already gave ("claims"), so a re-run keeps them.

Before copying a file, the copy stage creates a claim — ``DST/_manifest/claims/<hash>.json`` holding
the file's final name — with a create-only write. When a run starts and claims exist, the previous
attempt did not finish: the decode stage reads each file's claim first, and a claimed file skips the
download, the decode and the model, and keeps its name through de-duplication. Names therefore never
change on resume, even where the model is not bit-for-bit deterministic (GPU kernels, other batch
shapes). The whole ``_manifest/`` folder is removed when the run finishes. Cost: one small PUT per
file, plus one GET per file on a resumed run.
"""

from __future__ import annotations

import hashlib
import json

from renamer_ray.io.storage import Location, any_file_under, read_text_if_exists, write_once
from renamer_ray.manifest import PARTS_FOLDER

CLAIMS_FOLDER = f"{PARTS_FOLDER}/claims"


def _location(target: Location, relative: str) -> Location:
    return target.join(CLAIMS_FOLDER, hashlib.sha256(relative.encode("utf-8")).hexdigest()[:40] + ".json")


def interrupted(target: Location) -> bool:
    """Whether an earlier attempt into ``target`` left claims behind (so this run resumes it)."""
    return any_file_under(target.join(CLAIMS_FOLDER))


def read_claim(target: Location, relative: str) -> dict | None:
    """The claim for a source path: ``{"relative", "name", "format", "raw"}``, or None."""
    text = read_text_if_exists(_location(target, relative))
    return json.loads(text) if text else None


def claim(target: Location, relative: str, name: str, fmt: str, raw: str | None) -> str:
    """Claim ``name`` for ``relative``; return the name that holds (an earlier claim wins)."""
    record = {"relative": relative, "name": name, "format": fmt, "raw": raw}
    if write_once(_location(target, relative), json.dumps(record, ensure_ascii=False)):
        return name
    earlier = read_claim(target, relative)
    return earlier["name"] if earlier else name
