"""The local backend: files on this machine's disk (or a shared mount)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyarrow import fs as pafs

from renamer_ray.io.storage.base import ListedFile, Location, Storage, TargetExists, already_there

_FILESYSTEM = pafs.LocalFileSystem()


def _create(path: str, fill) -> bool:
    """Create ``path`` only if it does not exist; False if it does. ``fill(temporary)`` writes a
    temporary file beside it, which is then hard-linked into place: the link is atomic and fails if
    the name exists, so a crash never leaves a half-written file under a final name."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
    fill(temporary)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


@dataclass(frozen=True)
class LocalStorage(Storage):
    @property
    def filesystem(self) -> pafs.FileSystem:
        return _FILESYSTEM

    def uri(self, path: str) -> str:
        return path

    def make_dirs(self, path: str) -> None:
        self.filesystem.create_dir(path, recursive=True)

    def copy(self, source: Location, path: str, content_type: str | None = None,
             source_head: str | None = None) -> None:
        """Through a temporary file linked into place (``_create``); a byte-identical target is a copy."""
        if self._already_there(source, path):
            return
        if not _create(path, lambda temporary: pafs.copy_files(
                source.path, temporary, source_filesystem=source.filesystem, destination_filesystem=self.filesystem)):
            if not self._already_there(source, path):  # raced with another writer, which made it first
                raise TargetExists(f"{path} appeared while copying; it was not overwritten")

    def _already_there(self, source: Location, path: str) -> bool:
        """``already_there``, where a symbolic link (dangling or not) is never a copy: it is never
        followed nor replaced."""
        if os.path.islink(path):
            raise TargetExists(f"{path} is a symbolic link; it was not followed or replaced")
        return already_there(path, source.uri, os.path.lexists(path), lambda: os.path.isfile(path) and (
            self.read_bytes(path) == source.storage.read_bytes(source.path)))

    def move(self, source: Location, path: str) -> None:
        """A hard link under the new name (atomic, and it fails if the name exists), then the old
        name removed; on one file system, so the bytes are never copied."""
        try:
            os.link(source.path, path, follow_symlinks=False)
        except FileExistsError:
            if not os.path.samefile(source.path, path):
                raise TargetExists(f"{path} already exists; {source.path} was not moved over it") from None
        os.unlink(source.path)

    def holds(self, source: Location, path: str) -> bool | None:
        if not os.path.lexists(path):
            return None
        try:
            return self._already_there(source, path)
        except TargetExists:
            return False

    def same_stem(self, folder: str, stem: str) -> list[str]:
        wanted = stem.lower()
        try:
            with os.scandir(folder) as entries:
                return [entry.path for entry in entries if not entry.is_dir(follow_symlinks=False)
                        and posixpath.splitext(entry.name)[0].lower() == wanted]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def write_once(self, path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return _create(path, lambda temporary: Path(temporary).write_bytes(data))

    @contextlib.contextmanager
    def open_output(self, path: str):
        """Through a temporary file renamed into place: a symbolic link planted at the name is
        replaced, never written through."""
        folder, name = os.path.split(path)
        temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
        try:
            with self.filesystem.open_output_stream(temporary) as stream:
                yield stream
            os.replace(temporary, path)
        finally:
            if os.path.lexists(temporary):
                os.unlink(temporary)

    def any_file_under(self, path: str) -> bool:
        return os.path.isdir(path) and any(files for _, _, files in os.walk(path))

    def remove_folder(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def subfolders(self, path: str) -> list[str]:
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
        return [entry.name + "/" for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]

    def list_files(self, path: str, recursive: bool = True) -> Iterator[ListedFile]:
        """Each folder's files by name, then its subfolders by name."""
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            if not recursive:
                dirs.clear()
            relative_folder = os.path.relpath(folder, path).replace(os.sep, "/")
            for name in sorted(files):
                file = os.path.join(folder, name)
                try:
                    stat = os.stat(file)
                except OSError:  # a dangling symbolic link: listed, and it fails alone when it is read
                    stat = os.lstat(file)
                yield ListedFile(posixpath.normpath(posixpath.join(relative_folder, name)), stat.st_size,
                                 stat.st_mtime)
