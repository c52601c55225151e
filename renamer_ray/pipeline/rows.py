"""A pipeline row's state and the helpers every stage shares to make and read rows.

Row state, in one place: a row is *open* (still to be worked on) unless it is ``skipped`` (not an
image file), has an ``error`` (failed; the reason travels to the manifest) or is ``pinned`` (an
interrupted earlier attempt or an earlier run already named it; see ``resume.py``).
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass

from renamer_ray.naming import DEFAULT_STYLE, NamingStyle

STATE = ("error", "skipped", "pinned")   # the columns that say whether a row is open


def is_open(row: dict) -> bool:
    """Whether the row still needs work: not skipped, not failed, not pinned by an earlier attempt."""
    return row["error"] is None and not row["skipped"] and not row["pinned"]


@dataclass(frozen=True)
class Wishes:
    """Per-row job parameters every listed file carries (see ``columns.py``)."""

    target_root: str
    prompt: str | None = None
    template: str = "{subject}"
    resume: bool = False
    style: NamingStyle = DEFAULT_STYLE
    flat: bool = False               # all outputs in target_root, not in the source's folder there
    earlier: str | None = None       # manifest of a finished earlier run into target_root (earlier.py)
    earlier_size: int | None = None


def listed_row(source: str, relative: str, wishes: Wishes, *, size: int, mtime: float | None, index: int | None,
               image: bool = True, original: str | None = None, preview_to: str | None = None) -> dict:
    """One row of ``columns.LISTED``: the file, and what to do with it. ``image``: an image file by
    its extension (other files are counted as skipped); ``original``: the name a user uploaded it as;
    ``preview_to``: where the decode stage writes a small JPEG of it (the service's jobs)."""
    return {"source": source, "relative": relative, "size": size, "mtime": mtime, "index": index,
            "skipped": not image, "original": original, "preview_to": preview_to, **asdict(wishes),
            "style": None if wishes.style.is_default else wishes.style.to_json()}


def safe_folder(folder: str) -> str:
    """``folder`` without empty, "." and ".." segments (an S3 key may have them; so may a plan
    edited by hand): an output never lands outside its root."""
    return "/".join(part for part in folder.split("/") if part not in ("", ".", ".."))


OUTPUT_FOLDER = ("flat", "relative")     # the columns output_folder reads


def output_folder(row: dict) -> str:
    """Where under its target root a row's output goes: the source's folder ("" for flat runs)."""
    return "" if row["flat"] else safe_folder(posixpath.dirname(row["relative"]))
