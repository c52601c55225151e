"""The fault-injection suite: each case runs real work (real Ray, moto's S3/SQS server over HTTP,
the toy model) with one fault injected, compares what it left with an undisturbed run of the same
inputs, and adds a row to one table, printed at the end of the session:

    fault | runs | files lost | files duplicated | time to recover | outcome

"files lost": inputs with no byte-identical output; "files duplicated": outputs beyond one per input
(or outputs that are no input at all). "time to recover": from the fault until the work is
done (it includes the rest of the work itself); "—" where nothing recovers (a clean failure).
`docs/reliability.md` keeps a copy with the command that printed it."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Iterable


@dataclass
class FaultRow:
    fault: str
    runs: int
    lost: int
    duplicated: int
    recover_s: float | None
    outcome: str


ROWS: list[FaultRow] = []


def tally(inputs: Iterable[bytes], outputs: Iterable[bytes]) -> tuple[int, int]:
    """(files lost, files duplicated) of a run, by content: every input must appear exactly once."""
    wanted = Counter(hashlib.sha256(data).hexdigest() for data in inputs)
    got = Counter(hashlib.sha256(data).hexdigest() for data in outputs)
    lost = sum(1 for digest in wanted if digest not in got)
    duplicated = sum(count - wanted.get(digest, 0) for digest, count in got.items() if count > wanted.get(digest, 0))
    return lost, duplicated


def s3_outputs(s3, bucket: str, prefix: str) -> list[bytes]:
    """Every object a run left under an output prefix, except its own bookkeeping."""
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"].removeprefix(prefix)
            if not relative.startswith("_manifest/") and relative != "manifest.jsonl":
                out.append(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    return out


def add_row(fault: str, *, runs: int, lost: int, duplicated: int, recover_s: float | None, outcome: str) -> None:
    ROWS.append(FaultRow(fault, runs, lost, duplicated, recover_s, outcome))


def render_table(rows: list[FaultRow]) -> str:
    lines = ["| fault | runs | files lost | files duplicated | time to recover | outcome |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        recover = f"{r.recover_s:.1f} s" if r.recover_s is not None else "—"
        lines.append(f"| {r.fault} | {r.runs} | {r.lost} | {r.duplicated} | {recover} | {r.outcome} |")
    return "\n".join(lines)
