"""Names an interrupted attempt of the same run already gave ("claims"), so a re-run keeps them.

Before any file is copied, ``write.ClaimNames`` creates a claim for it —
``DST/_manifest/claims/<hash>.json``, holding the file's final name — with a create-only write. When
a run starts and claims exist, the previous attempt did not finish: ``resume.ReadClaims`` (fused
with the decode stage) reads each file's claim first, and a claimed file skips the download, the
decode and the model, and keeps its name through de-duplication. Names therefore never change on
resume, even where the model is not bit-for-bit deterministic (GPU kernels, other batch shapes). The
whole ``_manifest/`` folder is removed when the run finishes (a plan leaves an interrupted run's
claims for it: ``results.py``). Cost: one small PUT per file, plus one GET per file on a resumed run.

A claim is data, not an order (``trust.py``): anyone who can write into DST can leave one. A claim
is used only when it is the one this program writes for that file — a JSON object for the same
``relative`` path, with a name the naming rules could have given (``trust.name_problem``) and a
format this program writes — else ``read_claim`` raises :class:`RefusedClaim` and the file fails
with the reason (its name would otherwise come from whoever wrote the claim, ``../../x.jpg``
included).
"""

from __future__ import annotations

import hashlib
import json

from renamer_ray.io.storage import Location, any_file_under, read_text_if_exists, write_once
from renamer_ray.records.manifest import PARTS_FOLDER
from renamer_ray.records.trust import name_problem

CLAIMS_FOLDER = f"{PARTS_FOLDER}/claims"


def _location(target: Location, relative: str) -> Location:
    return target.join(CLAIMS_FOLDER, hashlib.sha256(relative.encode("utf-8")).hexdigest()[:40] + ".json")


def interrupted(target: Location) -> bool:
    """Whether an earlier attempt into ``target`` left claims behind (so this run resumes it)."""
    return any_file_under(target.join(CLAIMS_FOLDER))


class RefusedClaim(ValueError):
    """A claim this program did not write (see the module): the message says why, for a person."""


def claim_problem(claim: object, relative: str) -> str | None:
    """Why ``claim`` (parsed JSON) is not the claim this program writes for ``relative`` (None: it is)."""
    if not isinstance(claim, dict):
        return "it is not a JSON object"
    if claim.get("relative") != relative:
        return f"it is for another file ({claim.get('relative')!r})"
    fmt, raw = claim.get("format"), claim.get("raw")
    if not isinstance(fmt, str) or not isinstance(claim.get("name"), str) or not isinstance(raw, (str, type(None))):
        return "its name, format or model text is missing or not text"
    return name_problem(claim["name"], fmt)


def read_claim(target: Location, relative: str) -> dict | None:
    """The claim for a source path: ``{"relative", "name", "format", "raw"}``, or None;
    :class:`RefusedClaim` for one this program would not have written (``claim_problem``)."""
    location = _location(target, relative)
    text = read_text_if_exists(location)
    if text is None:
        return None
    try:
        claim = json.loads(text)
    except ValueError:
        claim = text
    if why := claim_problem(claim, relative):
        raise RefusedClaim(f"the claim {location.uri} for it was refused: {why}")
    return claim


def claim(target: Location, relative: str, name: str, fmt: str, raw: str | None) -> str:
    """Claim ``name`` for ``relative``; return the name that holds (an earlier claim wins)."""
    record = {"relative": relative, "name": name, "format": fmt, "raw": raw}
    if write_once(_location(target, relative), json.dumps(record, ensure_ascii=False)):
        return name
    try:
        earlier = read_claim(target, relative)
    except RefusedClaim as exc:  # the caller fails the file: the name that holds is not this one
        return f"(none: {exc})"
    return earlier["name"] if earlier else name
