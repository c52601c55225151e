"""The summary table printed at the end of a run."""

from __future__ import annotations

import posixpath


def _shown(source: str, root: str) -> str:
    """A source path relative to the run's root folder, else its file name."""
    prefix = root.rstrip("/") + "/"
    return source[len(prefix):] if root and source.startswith(prefix) else posixpath.basename(source)


def print_summary(summary, *, dry_run: bool) -> None:
    records = summary.records
    width = max([len(_shown(r.source, summary.source_root)) for r in records] + [8])
    verb = "would be" if dry_run else ""
    for r in records:
        old = _shown(r.source, summary.source_root)
        new = r.name if r.status == "ok" else f"FAILED: {r.error}"
        print(f"  {old:<{width}}  ->  {new}")
    if summary.ok + summary.failed > len(records):
        print(f"  … and {summary.ok + summary.failed - len(records)} more in the manifest")
    rate = (summary.ok + summary.failed) / summary.seconds if summary.seconds else 0.0
    print(f"\n{summary.ok} {verb + ' ' if verb else ''}renamed, {summary.failed} failed, "
          f"{summary.skipped} non-image files skipped, in {summary.seconds:.1f}s ({rate:.1f} images/s)")
    if summary.resumed:
        print(f"{summary.resumed} of them were named by an interrupted earlier attempt and kept their names")
    print(f"manifest: {summary.manifest}")
