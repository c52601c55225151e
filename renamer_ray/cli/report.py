"""The summary printed at the end of a run: a short table, the counts, and where the manifest is."""

from __future__ import annotations

import posixpath
import unicodedata

TABLE_ROWS = 50   # a run of a million files prints this many rows (failures first), then the counts
NODE_ID_CHARS = 8  # a Ray node id's first characters, as `ray list nodes` and the dashboard tell them apart
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}  # controls (terminal escapes), bidi overrides, separators


def printable(text: str) -> str:
    """``text`` as a terminal should show it: control and format characters (an ESC sequence, a
    right-to-left override in a file name) written as ``\\x1b`` / ``\\u202e`` instead of obeyed."""
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in text)


def _shown(source: str, root: str) -> str:
    """A source path relative to the run's root folder, else its file name."""
    prefix = root.rstrip("/") + "/"
    return printable(source[len(prefix):] if root and source.startswith(prefix) else posixpath.basename(source))


def print_summary(summary, *, dry_run: bool) -> None:
    records = sorted(summary.records, key=lambda r: r.status == "ok")[:TABLE_ROWS]  # failures first
    width = max([len(_shown(r.source, summary.source_root)) for r in records] + [8])
    verb = "would be" if dry_run else ""
    for r in records:
        old = _shown(r.source, summary.source_root)
        new = printable(r.output or r.name) if r.status == "ok" else f"FAILED: {printable(r.error or '')}"
        print(f"  {old:<{width}}  ->  {new}")
    if summary.ok + summary.failed > len(records):
        print(f"  … and {summary.ok + summary.failed - len(records):,} more in the manifest")
    rate = (summary.ok + summary.failed) / summary.seconds if summary.seconds else 0.0
    print(f"\n{summary.ok:,} {verb + ' ' if verb else ''}renamed, {summary.failed:,} failed, "
          f"{summary.skipped:,} non-image files skipped, in {summary.seconds:.1f}s ({rate:.1f} images/s)")
    if summary.kept:
        print(f"{summary.kept:,} of them were unchanged since an earlier run into this DST and kept their names "
              "(not asked again)")
    if summary.resumed:
        print(f"{summary.resumed:,} of them were named by an interrupted earlier attempt and kept their names")
    if len(summary.named_by_node) > 1:  # a run on one machine says nothing about nodes
        counts = sorted(summary.named_by_node.items(), key=lambda item: (-item[1], item[0]))
        print(f"named on {len(counts)} Ray nodes: "
              + ", ".join(f"{n:,} on {node[:NODE_ID_CHARS]}" for node, n in counts))
    print(f"manifest: {printable(summary.manifest)}")
