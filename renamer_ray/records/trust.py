"""The trust boundary for paths from outside: what a record read back from a manifest or a claim, or a
folder sent with an upload, may make this program do.

Such a record is data, not an order. Anyone who can write into SRC, DST or the manifest's folder can
write one, so a record is used only where it could have come from a run over the same tree: its
source lies inside the run's source root and its target inside its target root (a local folder,
resolved through symbolic links; on S3 the same bucket and key prefix, with no "." or ".." segment),
and its name is one the naming rules could have given. Everything else is ignored, and the caller
says why (``rename`` re-runs: one warning line per record; ``undo``: one refusal per record).

An upload's relative path (``Phone export/2024/IMG_001.HEIC``) is held to the same segment rules by
:func:`normal_relative`, which also gives it one normal form.

``outside``, ``normal_relative`` and ``name_problem`` are pure; :class:`Root` adds the one look at the
disk (where a symbolic link leads).
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata

from renamer_ray.records.manifest import FileRecord
from renamer_ray.naming import CASES, IMAGE_EXTENSIONS, SUPPORTED_FORMATS, is_valid_stem
from renamer_ray.naming.style import CHARS_RANGE, WORDS_RANGE


def outside(uri: str, root: str) -> str | None:
    """Why ``uri`` is not a file inside ``root`` by its letters alone (None: it is). Both are URIs
    as ``open_location`` writes them: an absolute local path, or ``s3://bucket/prefix``."""
    if "\x00" in uri:
        return "holds a NUL character"
    if root.startswith("s3://"):
        if not uri.startswith("s3://"):
            return f"is not on S3, where the run's files are ({root})"
        bucket, _, prefix = root[len("s3://"):].strip("/").partition("/")
        their_bucket, _, key = uri[len("s3://"):].partition("/")
        if their_bucket != bucket:
            return f"is in another bucket ({their_bucket}), not under {root}"
        if prefix and not key.startswith(prefix + "/"):
            return f"is not under {root}"
        rest = key[len(prefix) + 1:] if prefix else key
    else:
        if "://" in uri:
            return f"is not a local path, as the run's files are ({root})"
        if not uri.startswith("/"):
            return "is not an absolute path"
        base = root.rstrip("/")
        if not uri.startswith(base + "/"):
            return f"is not under {root}"
        rest = uri[len(base) + 1:]
    parts = rest.split("/")
    if why := segments_problem(parts):
        return why
    if not root.startswith("s3://") and "" in parts:
        return "has an empty segment"
    return None


def segments_problem(parts: list[str]) -> str | None:
    """Why the segments of a file's path under a root could lead out of it or name no file (None:
    they cannot)."""
    if any(part in (".", "..") for part in parts):
        return "has a '.' or '..' segment"
    if not parts[-1]:
        return "names a folder, not a file"
    return None


MAX_RELATIVE_BYTES = 512           # an upload's relative path, in UTF-8: its folder must fit an S3 key (1,024)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # can disguise a path
DRIVE = re.compile(r"[A-Za-z]:")


class UntrustedPath(ValueError):
    """A relative path from outside that may not be used; the message says why, as a sentence's end."""


def normal_relative(path: str) -> str:
    """``path``, a file's path relative to a chosen folder as a client sent it, in its one normal form:
    NFC, empty and "." segments left out (``a//b/./c`` → ``a/b/c``). :class:`UntrustedPath` where it
    could lead out of the folder, or hide what it is: absolute, a drive letter, a backslash, a ".."
    segment, a folder rather than a file, a NUL or other control character, a line break, a bidi
    override, over MAX_RELATIVE_BYTES."""
    path = unicodedata.normalize("NFC", path)
    if "\x00" in path:
        raise UntrustedPath("holds a NUL character")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in BIDI_CONTROLS for ch in path):
        raise UntrustedPath("holds a control character or a line break")
    if "\\" in path:
        raise UntrustedPath("holds a backslash: folders are separated by '/'")
    if path.startswith("/"):
        raise UntrustedPath("is an absolute path: send it relative to the chosen folder")
    if DRIVE.match(path):
        raise UntrustedPath("starts with a drive letter: send it relative to the chosen folder")
    if (size := len(path.encode("utf-8"))) > MAX_RELATIVE_BYTES:
        raise UntrustedPath(f"is too long: {size:,} bytes in UTF-8, at most {MAX_RELATIVE_BYTES}")
    parts = path.split("/")
    if why := segments_problem([part for part in parts[:-1] if part not in ("", ".")] + parts[-1:]):
        raise UntrustedPath(why)
    return "/".join(part for part in parts if part not in ("", "."))


def name_problem(name: str | None, fmt: str | None) -> str | None:
    """Why ``name`` is not a name the naming rules could have given (None: it is one): a stem of one
    of the cases (``naming.rules``) within the widest limits a style allows, so no path separator, and
    an image extension; ``fmt``, where given, a format this program writes (a kept name's extension is
    that of its format: ``naming.file_name``). Blocked words are not checked: a name given before the
    blocklist grew stays a name."""
    if not name:
        return "it records no name"
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() not in IMAGE_EXTENSIONS:
        return f"its name {name!r} does not have an image extension"
    if fmt is not None and fmt.upper() not in SUPPORTED_FORMATS:
        return f"its format {fmt!r} is not one this program writes"
    if not any(is_valid_stem(stem, max_chars=CHARS_RANGE[1], max_words=WORDS_RANGE[1], blocklist=(), case=case)
               for case in CASES):
        return (f"its name {name!r} breaks the naming rules (letters, digits and one case's separators, at most "
                f"{CHARS_RANGE[1]} characters, no path)")
    return None


def joined(root: str, relative: str) -> str:
    """The URI of ``relative`` under ``root``, as ``Location.join`` writes it."""
    return root.rstrip("/") + "/" + relative


class Root:
    """A tree earlier state may point into: a local folder or an S3 prefix (its URI, as
    ``open_location`` gives it). :meth:`problem` is :func:`outside`, plus, locally, where symbolic
    links lead: a path whose folders (or itself) resolve outside the root is refused. Resolved folders
    are remembered for the life of this object only (one reader of a manifest)."""

    def __init__(self, uri: str):
        self.uri = uri if uri.startswith("s3://") else (uri.rstrip("/") or "/")
        self._real_folders: dict[str, str] = {}
        self._real_root: str | None = None

    def problem(self, uri: str) -> str | None:
        """Why ``uri`` may not be used as a file of this tree (None: it may)."""
        return outside(uri, self.uri) or (None if self.uri.startswith("s3://") else self._leads_out(uri))

    def _leads_out(self, path: str) -> str | None:
        if self._real_root is None:
            self._real_root = os.path.realpath(self.uri)
        folder, name = posixpath.split(path)
        if folder not in self._real_folders:
            self._real_folders[folder] = os.path.realpath(folder)
        real = os.path.realpath(path) if os.path.islink(path) else posixpath.join(self._real_folders[folder], name)
        if not real.startswith(self._real_root.rstrip("/") + "/"):
            return f"leads out of {self.uri} through a symbolic link (to {real})"
        return None


def record_problem(record: FileRecord, source_root: Root, target_root: Root) -> str | None:
    """Why an earlier run's renamed-file record (``status`` ok) may not be used by a run from
    ``source_root`` into ``target_root`` (the same root for ``--in-place``); None: it may."""
    if why := source_root.problem(record.source):
        return f"its source {why}"
    if record.relative is not None and joined(source_root.uri, record.relative) != record.source:
        return f"its relative path {record.relative!r} is not where its source is under {source_root.uri}"
    if record.target is None:
        return "it records no target"
    if why := target_root.problem(record.target):
        return f"its target {record.target!r} {why}"
    if record.output is not None and joined(target_root.uri, record.output) != record.target:
        return f"its output {record.output!r} is not where its target is under {target_root.uri}"
    if record.target.rsplit("/", 1)[-1] != record.name:
        return f"its target {record.target!r} does not end in its name {record.name!r}"
    return name_problem(record.name, record.format)
