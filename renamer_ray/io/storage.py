"""Files addressed by URI through pyarrow filesystems: local paths and ``s3://bucket/prefix``.

The same pipeline reads and writes either; S3 endpoint and region come from the standard AWS
variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``) passed in as arguments, never read here.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyarrow import fs as pafs


@dataclass(frozen=True)
class Location:
    """A folder or file: its filesystem and the path inside it (picklable, goes to Ray workers)."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def join(self, *parts: str) -> "Location":
        path = posixpath.join(self.path, *parts)
        uri = self.uri.rstrip("/") + "/" + "/".join(parts)
        return Location(self.filesystem, path, uri)


@dataclass(frozen=True)
class ListedFile:
    """One file under a folder: its path relative to the folder, size and modification time."""

    relative: str
    size: int
    mtime: float | None


def open_location(uri: str, *, region: str | None = None, endpoint_url: str | None = None) -> Location:
    """A :class:`Location` for a local path or an ``s3://`` URI."""
    if uri.startswith("s3://"):
        bucket_and_key = uri[len("s3://"):].strip("/")
        kwargs = {"region": region} if region else {}
        if endpoint_url:
            kwargs["endpoint_override"] = endpoint_url
            kwargs["scheme"] = "https" if endpoint_url.startswith("https") else "http"
        return Location(pafs.S3FileSystem(**kwargs), bucket_and_key, "s3://" + bucket_and_key)
    if "://" in uri:
        raise ValueError(f"unsupported location {uri!r}: use a local path or s3://bucket/prefix")
    path = str(Path(uri).expanduser().resolve())
    return Location(pafs.LocalFileSystem(), path, path)


def list_files(folder: Location) -> Iterator[ListedFile]:
    """Every file under ``folder`` (recursively), in sorted order of relative path."""
    selector = pafs.FileSelector(folder.path, recursive=True, allow_not_found=False)
    infos = [i for i in folder.filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
    base = folder.path.rstrip("/") + "/"
    listed = [
        ListedFile(
            relative=info.path[len(base):] if info.path.startswith(base) else posixpath.basename(info.path),
            size=info.size or 0,
            mtime=info.mtime.timestamp() if info.mtime is not None else None,
        )
        for info in infos
    ]
    yield from sorted(listed, key=lambda f: f.relative)


def read_bytes(location: Location) -> bytes:
    with location.filesystem.open_input_stream(location.path) as stream:
        return stream.read()


def exists(location: Location) -> bool:
    return location.filesystem.get_file_info(location.path).type != pafs.FileType.NotFound


def make_dirs(location: Location) -> None:
    location.filesystem.create_dir(location.path, recursive=True)


def copy(source: Location, target: Location) -> None:
    """Copy a file; within one S3 filesystem this is a server-side copy (no download)."""
    if source.filesystem.equals(target.filesystem):
        source.filesystem.copy_file(source.path, target.path)
    else:
        pafs.copy_files(source.path, target.path, source_filesystem=source.filesystem,
                        destination_filesystem=target.filesystem)


def write_text(location: Location, text: str) -> None:
    with location.filesystem.open_output_stream(location.path) as stream:
        stream.write(text.encode("utf-8"))
