"""The storage interface: what a backend (local disk, S3) does, the Location that names a file on
one, and the one rule for "already copied"."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Callable, ContextManager, Iterator

from pyarrow import fs as pafs

from renamer_ray.io.storage.retry import retrying

READ_BUFFER_BYTES = 256 * 1024  # per stream read line by line: one GET per 256 KiB on S3


@dataclass(frozen=True)
class StorageConfig:
    """How to reach S3 or an S3-compatible server (from AWS_REGION / AWS_ENDPOINT_URL): picklable,
    handed to every stage that opens locations."""

    region: str | None = None
    endpoint_url: str | None = None

    @classmethod
    def of(cls, settings) -> "StorageConfig":
        """From the settings' AWS_REGION and AWS_ENDPOINT_URL (read by name: io/ imports no config)."""
        return cls(settings.aws_region, settings.aws_endpoint_url)


@dataclass(frozen=True)
class ListedFile:
    """One file under a folder: its path relative to the folder, size and modification time."""

    relative: str
    size: int
    mtime: float | None


class TargetExists(Exception):
    """The target already holds something that is not a copy of this source."""


class SourceChanged(OSError):
    """A source replaced after it was read (and named from what it held then): not copied."""


def already_there(target: str, source: str, taken: bool, is_copy: Callable[[], bool]) -> bool:
    """The one rule of every backend's create-only copy. Nothing at the target: False (copy it). A
    copy of this same source: True (done; a retry or a re-run). Anything else: TargetExists, and it is
    never overwritten. ``is_copy`` is how the backend recognises a copy: S3 by the source's
    fingerprint in the object's metadata, a local file by its bytes."""
    if not taken:
        return False
    if is_copy():
        return True
    raise TargetExists(f"{target} already exists and is not a copy of {source}; it was not overwritten")


class Storage(ABC):
    """A backend. ``path`` is its own: a local absolute path, or "bucket/key" on S3. Reads go through
    its pyarrow filesystem; creating a file never replaces one (copy, write_once), and only
    write_text/open_output replace a file whole."""

    @property
    @abstractmethod
    def filesystem(self) -> pafs.FileSystem: ...

    @abstractmethod
    def uri(self, path: str) -> str: ...

    @property
    def outage_scope(self) -> str | None:
        """Which store's outage a failed call counts towards (``retry.retrying``); None: not tracked."""
        return None

    def read_bytes(self, path: str) -> bytes:
        """Transient errors are retried (``retrying``), as every other S3 request is."""
        def read() -> bytes:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read()
        return retrying(read, scope=self.outage_scope)

    def read_object(self, path: str) -> tuple[bytes, str | None]:
        """The file's bytes, and what a copy of it needs to know of it without asking again (S3: the
        headers its GET answered, ``S3Storage.read_object``); None here: a copy looks for itself."""
        return self.read_bytes(path), None

    def read_head(self, path: str, size: int) -> bytes:
        """The first ``size`` bytes (S3: one ranged GET), retried as ``read_bytes``."""
        def read() -> bytes:
            with self.filesystem.open_input_file(path) as file:
                return file.read(size)
        return retrying(read, scope=self.outage_scope)

    def size(self, path: str) -> int:
        return self.filesystem.get_file_info(path).size

    def read_lines(self, path: str) -> Iterator[str]:
        # Buffered: unbuffered, pyarrow's S3 stream sends one ranged GET per 8 KiB the text reader asks.
        with self.filesystem.open_input_stream(path, buffer_size=READ_BUFFER_BYTES) as stream:
            yield from io.TextIOWrapper(stream, encoding="utf-8")

    def read_text_if_exists(self, path: str) -> str | None:
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read().decode("utf-8")
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type != pafs.FileType.NotFound

    @abstractmethod
    def make_dirs(self, path: str) -> None: ...

    @abstractmethod
    def copy(self, source: Location, path: str, content_type: str | None = None,
             source_head: str | None = None) -> None:
        """Copy ``source`` (on either backend) to ``path``, create-only (``already_there``).
        ``source_head``: what ``read_object`` said of the source, if it was read."""

    @abstractmethod
    def move(self, source: Location, path: str) -> None:
        """Rename ``source`` (on this backend) to ``path``, never over another file (TargetExists).
        A crash at any point leaves the file under the old name, the new one, or both (the same
        bytes): calling it again finishes the move."""

    @abstractmethod
    def holds(self, source: Location, path: str) -> bool | None:
        """What is at ``path``: None (nothing), True (a copy of ``source``, as ``copy`` recognises
        one), False (another file, or a symbolic link)."""

    @abstractmethod
    def same_stem(self, folder: str, stem: str) -> list[str]:
        """The paths of the files directly in ``folder`` named ``stem`` with any extension (compared
        case-insensitively where the backend lists that way: locally; S3 keys are case-sensitive)."""

    @abstractmethod
    def write_once(self, path: str, data: bytes) -> bool:
        """Create a small file only if the name is free; True if this call created it."""

    @abstractmethod
    def open_output(self, path: str) -> ContextManager[BinaryIO]:
        """A stream that writes the file whole (replacing it); readers never see half of it."""

    @abstractmethod
    def any_file_under(self, path: str) -> bool: ...

    @abstractmethod
    def remove_folder(self, path: str) -> None: ...

    @abstractmethod
    def subfolders(self, path: str) -> list[str]:
        """The names of the folder's direct subfolders, each ending in "/"."""

    @abstractmethod
    def list_files(self, path: str, recursive: bool = True) -> Iterator[ListedFile]:
        """The files under the folder (relative to it), streamed; only its direct files unless
        ``recursive``."""


@dataclass(frozen=True)
class Location:
    """A folder or file: its backend and the path inside it (picklable, goes to Ray workers)."""

    storage: Storage
    path: str
    uri: str

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self.storage.filesystem

    @property
    def parent(self) -> Location:
        """The folder this location is in."""
        return Location(self.storage, self.path.rstrip("/").rsplit("/", 1)[0], self.uri.rstrip("/").rsplit("/", 1)[0])

    def join(self, *parts: str) -> Location:
        """A location under this one; ``parts`` are relative (an S3 key may have an empty segment)."""
        tail = "/".join(parts)
        return Location(self.storage, self.path.rstrip("/") + "/" + tail, self.uri.rstrip("/") + "/" + tail)
