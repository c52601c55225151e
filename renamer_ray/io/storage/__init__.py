"""Files addressed by URI: local paths and ``s3://bucket/prefix``, one interface (``base.Storage``)
with a backend for each (``local.py``, ``s3.py``), and the retry policy (``retry.py``).

The same pipeline reads and writes either: ``open_location`` gives a :class:`Location`, which knows
its backend, and the functions below hand each call to it. S3 endpoint and region come from the
standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``) passed in as a :class:`StorageConfig`,
never read here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, ContextManager, Iterator

from botocore.exceptions import BotoCoreError, ClientError  # what S3 requests raise, re-exported for callers

from renamer_ray.io.storage.base import (ListedFile, Location, SourceChanged, Storage, StorageConfig, TargetExists,
                                         already_there)
from renamer_ray.io.storage.local import LocalStorage
from renamer_ray.io.storage.retry import TRANSIENT_S3_ERRORS, StorageUnavailable, explain, is_transient, retrying
from renamer_ray.io.storage.s3 import FINGERPRINT_KEY, S3Storage, multipart_copy, put_if_absent, s3_client
from renamer_ray.io.storage.s3_objects import head_if_exists

__all__ = [
    # the interface, its backends, the rule for "already copied"
    "Storage", "LocalStorage", "S3Storage", "StorageConfig", "Location", "ListedFile", "TargetExists", "SourceChanged",
    "already_there",
    # locations and what is done with them
    "open_location", "read_bytes", "read_object", "read_head", "size_of", "read_lines", "read_text_if_exists", "exists", "is_link", "stem_taken", "make_dirs", "copy", "move",
    "transfer",
    "write_once",
    "write_bytes", "write_text", "open_output", "any_file_under", "remove_folder", "subfolders", "list_files",
    # retries (the budget and attempts are set in retry.py: tests and fault hooks change them there)
    "retrying", "is_transient", "explain", "StorageUnavailable", "TRANSIENT_S3_ERRORS", "LocationError",
    # S3 itself (copy part sizes are set in s3.py)
    "s3_client", "put_if_absent", "head_if_exists", "multipart_copy", "FINGERPRINT_KEY",
    "ClientError", "STORAGE_ERRORS",
]

# What a storage call may raise besides TargetExists: local I/O, S3's answers, S3's transport.
STORAGE_ERRORS = (OSError, ClientError, BotoCoreError)

LOCAL = LocalStorage()


class LocationError(ValueError):
    """Not a location this program can read or write (another URI scheme)."""


def open_location(uri: str, config: StorageConfig | None = None) -> Location:
    """A :class:`Location` for a local path or an ``s3://`` URI (reached as ``config`` says: by
    default the AWS SDK's own region and endpoint)."""
    if uri.startswith("s3://"):
        bucket_and_key = uri[len("s3://"):].strip("/")
        return Location(S3Storage(config or StorageConfig()), bucket_and_key,
                        "s3://" + bucket_and_key)
    if "://" in uri:
        raise LocationError(f"unsupported location {uri!r}: use a local path or s3://bucket/prefix")
    path = str(Path(uri).expanduser().resolve())
    return Location(LOCAL, path, path)


def read_bytes(location: Location) -> bytes:
    """The file's bytes; transient S3 errors are retried (``retrying``), as every other S3 request is."""
    return location.storage.read_bytes(location.path)


def read_object(location: Location) -> tuple[bytes, str | None]:
    """The file's bytes, and what a later copy of it needs to know (``Storage.read_object``)."""
    return location.storage.read_object(location.path)


def read_head(location: Location, size: int) -> bytes:
    """The file's first ``size`` bytes (enough to tell its format), without reading the rest."""
    return location.storage.read_head(location.path, size)


def size_of(location: Location) -> int:
    return location.storage.size(location.path)


def read_lines(location: Location) -> Iterator[str]:
    """A text file's lines (with their newlines), streamed."""
    return location.storage.read_lines(location.path)


def read_text_if_exists(location: Location) -> str | None:
    return location.storage.read_text_if_exists(location.path)


def is_link(uri: str) -> bool:
    """Whether a local path is itself a symbolic link (``open_location`` resolves links, so ask
    before); S3 has none."""
    return "://" not in uri and os.path.islink(Path(uri).expanduser())


def exists(location: Location) -> bool:
    return location.storage.exists(location.path)


def stem_taken(source: Location, folder: Location, stem: str) -> bool:
    """Whether ``folder`` holds a file named ``stem`` with any extension that is not a copy of
    ``source`` (``copy`` would refuse it): an earlier run's output for another file, or a file a
    person put there. De-duplication compares names without their extension, so any of them does."""
    return any(folder.storage.holds(source, path) is False for path in folder.storage.same_stem(folder.path, stem))


def move(source: Location, target: Location) -> None:
    """Rename a file within one backend, never over another file (:class:`TargetExists`); calling it
    again after a crash finishes the move (see ``Storage.move``)."""
    target.storage.move(source, target.path)


def make_dirs(location: Location) -> None:
    """Create a local folder; S3 has no folders (and an empty "prefix/" marker object is clutter)."""
    location.storage.make_dirs(location.path)


def copy(source: Location, target: Location, *, content_type: str | None = None,
         source_head: str | None = None) -> None:
    """Copy a file without ever overwriting a different one (:class:`TargetExists`); a target that is
    already a copy of this source counts as done (``base.already_there``). S3 → S3 is a server-side
    copy (no download) of the version read (``source_head``, from ``read_object``), else of the
    version there now."""
    target.storage.copy(source, target.path, content_type, source_head)


def transfer(source: Location, target: Location, *, remove_source: bool = False,
             content_type: str | None = None, source_head: str | None = None) -> str | None:
    """Copy ``source`` to ``target`` (with ``remove_source``: move it, within one backend), never
    over a different file and retried through transient errors: None when done, else a sentence
    that says why not. Done before counts as done: a copy of this source already there, or, for a
    move, only the target left."""
    try:
        if not remove_source:
            retrying(copy, source, target, content_type=content_type, source_head=source_head)
        elif retrying(exists, source) or not retrying(exists, target):
            retrying(move, source, target)
        return None
    except TargetExists as exc:
        return str(exc)
    except STORAGE_ERRORS as exc:
        hint = "; this looks like a storage error: running again may succeed" if is_transient(exc) else ""
        return f"could not {'rename it' if remove_source else 'copy'} to {target.uri}: {exc}{hint}"


def write_once(location: Location, text: str) -> bool:
    """Create a small file only if it does not exist yet (S3: If-None-Match; local: an atomic
    link). True if this call created it."""
    return location.storage.write_once(location.path, text.encode("utf-8"))


def write_bytes(location: Location, data: bytes, *, content_type: str, cache_control: str) -> None:
    """Write a small file whole, overwriting it, with the headers whoever serves it sends: on S3 its
    Content-Type and Cache-Control (a local file keeps none; its folder is made)."""
    if isinstance(location.storage, S3Storage):
        location.storage.put(location.path, data, content_type, cache_control)
    else:
        make_dirs(location.parent)
        with open_output(location) as stream:
            stream.write(data)


def write_text(location: Location, text: str) -> None:
    with open_output(location) as stream:
        stream.write(text.encode("utf-8"))


def open_output(location: Location) -> ContextManager[BinaryIO]:
    """A stream that writes ``location`` whole. Locally through a temporary file renamed into place:
    a symbolic link planted at the name is replaced, never written through, and readers never see
    half a file. On S3 a (multipart) upload, which is atomic anyway."""
    return location.storage.open_output(location.path)


def any_file_under(location: Location) -> bool:
    """Whether a folder (or S3 prefix) holds at least one file (one request on S3)."""
    return location.storage.any_file_under(location.path)


def remove_folder(location: Location) -> None:
    """Delete a folder of our own (local tree, or every key under an S3 prefix; no marker left)."""
    location.storage.remove_folder(location.path)


def subfolders(location: Location) -> list[str]:
    """The folder's direct subfolders, each ending in "/" (a missing local folder: FileNotFoundError)."""
    return location.storage.subfolders(location.path)


def list_files(location: Location, recursive: bool = True) -> Iterator[ListedFile]:
    """The files under a folder, relative to it, streamed (S3: 1,000 keys per request) in the
    backend's order; only its direct files unless ``recursive``."""
    return location.storage.list_files(location.path, recursive)
