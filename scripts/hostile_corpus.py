"""Send the hostile-input corpus (tests/support/hostile.py) through all three ways in: the CLI on a folder,
the pipeline S3 → S3, and the HTTP API of the local stack (each file in a job of its own beside an
ordinary photo). Prints, per kind, what each way answered, and the peak memory of the stack's
processes, and each file's own decode peak (this process's peak RSS, reset before each decode,
minus its RSS before it: what one decode task holds); appends the table to docs/reliability.md (``--no-write`` to skip).

Then the trust cases (``--trust-only``: those alone): earlier state planted by a stranger (a manifest
in SRC, in DST or on S3, a claim in DST, symbolic links leading out of SRC), a hand-made undo file,
a project folder's renamer-ray.toml, and HTTP requests that once gave a 500 or come from another
site or host, each through the CLI, S3 or the stack's API. Per case: what the program answered, and
whether everything outside the asked-for tree is unchanged (checksum listings before and after);
the table replaces its section of docs/reliability.md. Exit status 1 when a case shows a hole::

    .venv/bin/python scripts/hostile_corpus.py
    .venv/bin/python scripts/hostile_corpus.py --trust-only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import boto3
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script: the corpus lives in the test tree (tests/support)
DOC = ROOT / "docs" / "reliability.md"
RENAMER = str(Path(sys.executable).with_name("renamer-ray"))

from renamer_ray.cli import SAMPLES  # noqa: E402  (after the path: run from anywhere)
from renamer_ray.records.manifest import parse_lines  # noqa: E402
from tests.support.hostile import (checksum_listing, corpus, planted_claim, planted_record,  # noqa: E402
                                   s3_checksum_listing, stat_fields, write_jsonl)


class PeakMemory:
    """Samples the summed RSS of this process and its children every 0.2 s."""

    def __init__(self) -> None:
        self.peak, self.stop = 0, threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def decode_peaks(items, settings) -> dict[str, float]:
    """MiB each file's decode adds to this process's peak RSS (Linux: writing 5 to clear_refs resets
    the peak; malloc_trim returns the last decode's memory first), with the pipeline's limits."""
    import ctypes
    import gc

    from renamer_ray.images import ImageError, decode

    libc = ctypes.CDLL("libc.so.6")

    def status(field: str) -> int:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    peaks = {}
    for item in items:
        gc.collect()
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = status("VmRSS")
        try:
            decode(item.data, max_pixels=settings.max_pixels, max_decode_pixels=settings.max_decode_pixels)
        except ImageError:
            pass
        peaks[item.kind] = max(0, status("VmHWM") - before) / 2**20
    return peaks


def largest_allowed():
    """Images at the decode limit (not hostile, only large): what one decode may hold at most."""
    import io
    from types import SimpleNamespace

    from PIL import Image

    def encoded(size, fmt, **options) -> bytes:
        out = io.BytesIO()
        Image.effect_noise(size, 64).convert("RGB").save(out, fmt, **options)
        return out.getvalue()

    return [SimpleNamespace(kind="PNG of 39.9 MP (just under MAX_DECODE_PIXELS, decoded at full size)",
                            data=encoded((7_300, 5_460), "PNG", compress_level=1)),
            SimpleNamespace(kind="JPEG of 48 MP (over the limit: JPEG decodes at reduced size)",
                            data=encoded((8_000, 6_000), "JPEG", quality=80))]


def outcome(record) -> str:
    return f"name `{record.name}`" if record.status == "ok" else f"error: {record.error[:70]}"


def image_corpus(stack, work: Path, items) -> dict[str, dict[str, str]]:
    """Each file of the corpus through the CLI on a folder, the pipeline S3 → S3 and the HTTP API:
    kind → way in → what it answered (``rows["_"]["cli exit"]``: the CLI's exit status)."""
    from renamer_ray.pipeline.engines import NamerRef
    from renamer_ray.pipeline.run import RunOptions, run
    from renamer_ray.service.local.demo import wait

    rows: dict[str, dict[str, str]] = {item.kind: {} for item in items}
    # 1. the CLI on a folder (names no file system holds are API-only)
    src = work / "src"
    src.mkdir()
    on_disk = {}
    for number, item in enumerate(items):
        if not item.api_only:
            name = f"{number:02d}-{item.name}"
            (src / name).write_bytes(item.data)
            on_disk[name] = item
    cli = subprocess.run([RENAMER, "rename", str(src), str(work / "out"),
                          "--model", "toy-shapes", "--namer-service"], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "RAY_ADDRESS": stack.head.address})
    manifest = (work / "out" / "manifest.jsonl").read_text() if (work / "out" / "manifest.jsonl").exists() else ""
    by_source = {r.source.rsplit("/", 1)[1]: r for r in parse_lines(manifest)}
    for name, item in on_disk.items():
        rows[item.kind]["CLI"] = outcome(by_source[name]) if name in by_source else "skipped (not an image extension)"
    rows.setdefault("_", {})["cli exit"] = str(cli.returncode)

    # 2. the pipeline S3 → S3 (same files as objects)
    s3 = boto3.client("s3", endpoint_url=stack.settings.aws_endpoint_url, region_name=stack.settings.aws_region)
    s3.create_bucket(Bucket="hostile")
    for name in on_disk:
        s3.put_object(Bucket="hostile", Key=f"in/{name}", Body=(src / name).read_bytes())
    summary = run(RunOptions(source="s3://hostile/in", target="s3://hostile/out", namer=NamerRef()), stack.settings)
    records = {r.source.rsplit("/", 1)[1]: r for r in summary.records}
    for name, item in on_disk.items():
        rows[item.kind]["S3"] = outcome(records[name]) if name in records else "skipped (not an image extension)"

    # 3. the HTTP API: each kind in a job of its own, beside an ordinary photo
    control = next(item for item in items if item.kind.startswith("control"))
    for item in items:
        answer = httpx.post(f"{stack.api}/v1/jobs/rename", timeout=120, files=[
            ("files", (item.name, item.data)), ("files", ("control.jpg", control.data))])
        if answer.status_code != 200:
            rows[item.kind]["API"] = f"{answer.status_code}: {answer.json()['detail'][:70]}"
            continue
        job = wait(stack.api, answer.json()["job_id"], timeout=300)
        first, neighbour = job["results"]
        harmed = "" if neighbour["status"] == "ok" else " — THE NEIGHBOUR FAILED"
        rows[item.kind]["API"] = (f"name `{first['name']}`" if first["status"] == "ok"
                                  else f"error: {first['error'][:70]}") + harmed
    return rows


def corpus_lines(items, rows, peaks, bounds, memory: PeakMemory, seconds: float) -> list[str]:
    """The corpus table, the decode peaks at the limit and the closing sentence."""
    from renamer_ray.config import load_settings

    lines = ["| kind | decode peak | CLI (folder) | S3 → S3 | HTTP API (job of its own + an ordinary photo) |",
             "|---|---|---|---|---|"]
    for item in items:
        answer = rows[item.kind]
        lines.append(f"| {item.kind} | {peaks[item.kind]:.0f} MiB | {answer.get('CLI', 'API only')} | "
                     f"{answer.get('S3', 'API only')} | {answer.get('API', '')} |".replace("\n", " "))
    lines += ["", "| at the limit | decode peak |", "|---|---|"]
    lines += [f"| {kind} | {peak:.0f} MiB |" for kind, peak in bounds.items()]
    lines.append("")
    kinds = len({item.kind.rsplit(" ", 1)[0] if item.kind.startswith("EXIF") else item.kind for item in items})
    lines.append(f"{len(items)} files of {kinds} kinds (EXIF orientations 1–8 are one) in {seconds:.0f} s; "
                 f"CLI exit status {rows['_']['cli exit']} (1: some files failed, as they should); peak memory of "
                 f"the whole local stack (Ray head, workers, namer, S3/SQS server, this script): "
                 f"{memory.peak / 2 ** 30:.2f} GiB; the largest single decode: {max(peaks.values()):.0f} MiB in the corpus, "
                 f"{max(bounds.values()):.0f} MiB at the limit "
                 f"(MAX_DECODE_PIXELS {load_settings().max_decode_pixels:,}); machine: {os.cpu_count()} CPUs.")
    return lines


# Trust cases: earlier state, undo files, a project's config and HTTP requests from strangers ---------------

class Row(NamedTuple):
    case: str
    way: str        # CLI / S3 / HTTP
    answer: str     # exit status and the refusal line, or HTTP status and detail
    outside: str    # "unchanged", or "CHANGED …"


def short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def compared(before: dict, after: dict) -> str:
    """"unchanged", or "CHANGED" and the first few paths added, removed or altered."""
    if before == after:
        return "unchanged"
    changes = ([f"+{k}" for k in after.keys() - before.keys()] + [f"-{k}" for k in before.keys() - after.keys()]
               + [f"~{k}" for k in before.keys() & after.keys() if before[k] != after[k]])
    return "CHANGED: " + ", ".join(sorted(changes)[:3])


def said(done: subprocess.CompletedProcess, needle: str, base: Path | str = "", example: str = "") -> str:
    """``exit N; k× <line>``: how many lines of the output hold ``needle``, and the first of them (the
    first holding ``example`` too, where given) from ``needle`` on, ``base`` written as "…". Without
    such a line, the last line of stderr: what the command said instead."""
    output = (done.stderr + done.stdout).replace(str(base), "…") if base else done.stderr + done.stdout
    lines = [line[line.index(needle):] for line in output.splitlines() if needle in line]
    if not lines:
        last = (done.stderr.strip().splitlines() or ["(nothing)"])[-1]
        return f"exit {done.returncode}; NO '{needle}' LINE; last: {short(last, 60)}"
    shown = next((line for line in lines if example in line), lines[0])
    return f"exit {done.returncode}; " + (f"{len(lines)}× " if len(lines) > 1 else "") + short(shown)


def failure(done: subprocess.CompletedProcess, manifest: Path, relative: str, base: Path, needle: str = "") -> str:
    """``exit N; <relative>: <its error>`` from the manifest the run wrote (the file failed alone),
    from ``needle`` on where it holds it, ``base`` written as "…"."""
    records = {r.relative: r for r in parse_lines(manifest.read_text())} if manifest.is_file() else {}
    record = records.get(relative)
    why = (record.error if record and record.status == "error" else
           f"NOT REFUSED: {record.status} {record.name}" if record else "NO RECORD OF IT")
    if needle and needle in why and not why.startswith(needle):
        why = "…" + why[why.index(needle):]
    return f"exit {done.returncode}; {relative}: " + short(why.replace(str(base), "…"))


class Trial:
    """What the trust cases share: the running stack, a scratch folder, an S3 client of the stack's
    endpoint, and what every CLI run gets: the stack's Ray and S3, no settings file of the user's."""

    def __init__(self, stack, work: Path):
        self.stack, self.work = stack, work
        self.s3 = boto3.client("s3", endpoint_url=stack.settings.aws_endpoint_url,
                               region_name=stack.settings.aws_region)
        (work / "config-home").mkdir(parents=True)
        self.env = {**os.environ, "RAY_ADDRESS": stack.head.address, "XDG_CONFIG_HOME": str(work / "config-home"),
                    "AWS_ENDPOINT_URL": stack.settings.aws_endpoint_url}
        self.env.pop("RENAMER_RAY_CONFIG", None)

    def cli(self, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """`renamer-ray ARGS` in ``cwd`` (default: the scratch folder, which has no renamer-ray.toml); a
        rename with the toy model, named by the stack's warm namer."""
        command = [RENAMER, *map(str, args)]
        if args[0] == "rename":
            command += ["--model", "toy-shapes", "--namer-service"]
        return subprocess.run(command, cwd=cwd or self.work, env=self.env, capture_output=True, text=True, timeout=900)

    def home(self, name: str) -> tuple[Path, Path, Path]:
        """``<name>/share/photos`` (the bundled samples: SRC) beside ``<name>/outside`` (a key and a
        photo no run over SRC may touch), as in test_trust_manifests.py: (``<name>``, SRC, outside)."""
        base = self.work / name
        src, out = base / "share" / "photos", base / "outside"
        shutil.copytree(SAMPLES, src)
        out.mkdir()
        (out / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
        (out / "photo.jpg").write_bytes(photo())
        return base, src, out

    def put(self, bucket: str, objects: dict[str, bytes], **options) -> None:
        """Create ``bucket`` if needed and write ``objects`` (key → bytes) into it."""
        if bucket not in {b["Name"] for b in self.s3.list_buckets()["Buckets"]}:
            self.s3.create_bucket(Bucket=bucket)
        for key, body in objects.items():
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, **options)

    def s3_outside(self, inside: str | tuple[str, ...], *buckets: str) -> dict[str, str]:
        """``bucket/key`` → sha256 of every object of ``buckets`` not under ``inside`` (``bucket/prefix/``,
        or several)."""
        return {f"{bucket}/{key}": digest for bucket in buckets
                for key, digest in s3_checksum_listing(self.s3, bucket).items()
                if not f"{bucket}/{key}".startswith(inside)}

    def keys(self, bucket: str, prefix: str) -> set[str]:
        return {o["Key"] for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])}


def photo() -> bytes:
    """An ordinary photo (a bundled sample)."""
    return (SAMPLES / "IMG_0001.JPG").read_bytes()


def src_manifest_local(t: Trial) -> Row:
    """The report's attack: SRC/.renamer-ray/manifest.jsonl moving a key and a photo of the sibling
    folder into SRC, and pinning a photo of SRC to `../../pwned.jpg`."""
    base, src, out = t.home("src-manifest")
    write_jsonl(src / ".renamer-ray" / "manifest.jsonl", [
        planted_record(str(out / "id_rsa"), str(src / "stolen.txt"), format=None),
        planted_record(str(out / "photo.jpg"), str(src / "stolen.jpg"), **stat_fields(out / "photo.jpg")),
        planted_record(str(src / "IMG_0002.JPG"), f"{src}/../../pwned.jpg", relative="IMG_0002.JPG",
                       output="../../pwned.jpg", name="../../pwned.jpg", **stat_fields(src / "IMG_0002.JPG"))])
    before = checksum_listing(base, skip=src)
    done = t.cli("rename", src, "--in-place")
    return Row("manifest planted in SRC/.renamer-ray/ (a sibling folder's key and photo moved into SRC, "
               "`../../pwned.jpg`) + `rename SRC --in-place`", "CLI",
               said(done, "ignored the record of", base, "photo.jpg"), compared(before, checksum_listing(base, skip=src)))


def src_manifest_s3(t: Trial) -> Row:
    """The same on S3: records moving objects of another bucket, another prefix, a sibling prefix
    and a `..` key into s3://trust-lib/photos."""
    root, image = "s3://trust-lib/photos", photo()
    t.put("trust-lib", {f"photos/{p.relative_to(SAMPLES).as_posix()}": p.read_bytes()
                        for p in sorted(SAMPLES.rglob("*")) if p.is_file()})
    t.put("trust-lib", {"private/key.jpg": image, "photos-b/x.jpg": image})
    t.put("trust-other", {"secret.jpg": image})
    planted = [planted_record("s3://trust-other/secret.jpg", f"{root}/stolen.jpg", size=len(image)),
               planted_record("s3://trust-lib/private/key.jpg", f"{root}/stolen-key.jpg", size=len(image)),
               planted_record("s3://trust-lib/photos-b/x.jpg", f"{root}/stolen-b.jpg", size=len(image)),
               planted_record(f"{root}/../private/key.jpg", f"{root}/stolen-dots.jpg", size=len(image))]
    t.put("trust-lib", {"photos/.renamer-ray/manifest.jsonl": "".join(
        json.dumps(r) + "\n" for r in sorted(planted, key=lambda r: r["source"])).encode()})
    before = t.s3_outside("trust-lib/photos/", "trust-lib", "trust-other")
    done = t.cli("rename", root, "--in-place")
    return Row("manifest planted in s3://…/photos/.renamer-ray/ (objects of another bucket, another prefix, a `..` "
               "key moved in) + `rename s3://…/photos --in-place`", "S3",
               said(done, "ignored the record of", example="another bucket"),
               compared(before, t.s3_outside("trust-lib/photos/", "trust-lib", "trust-other")))


def dst_manifest(t: Trial) -> Row:
    """A copy re-run whose DST/manifest.jsonl was planted: a record whose target is in the sibling
    folder, and one whose name climbs out of DST."""
    base, src, out = t.home("dst-manifest")
    dst = base / "share" / "named"
    write_jsonl(dst / "manifest.jsonl", [
        planted_record(str(src / "IMG_0003.HEIC"), str(out / "dropped.jpg"), in_place=None,
                       **stat_fields(src / "IMG_0003.HEIC")),
        planted_record(str(src / "IMG_0002.JPG"), f"{dst}/../../pwned.jpg", relative="IMG_0002.JPG",
                       output="../../pwned.jpg", name="../../pwned.jpg", in_place=None,
                       **stat_fields(src / "IMG_0002.JPG"))])
    before = checksum_listing(base, skip=dst)
    done = t.cli("rename", src, dst)
    return Row("manifest planted in DST (a target in the sibling folder, `../../pwned.jpg`) + `rename SRC DST`",
               "CLI", said(done, "ignored the record of", base, "dropped.jpg"),
               compared(before, checksum_listing(base, skip=dst)))


def dst_claim(t: Trial) -> Row:
    """A claim planted in DST/_manifest/claims/ (a resumed run reads it) naming `../../pwned.jpg`."""
    base, src, _ = t.home("claim")
    dst = base / "share" / "named"
    planted_claim(dst, "IMG_0002.JPG", "../../pwned.jpg")
    before = checksum_listing(base, skip=dst)
    done = t.cli("rename", src, dst)
    return Row("claim planted in DST/_manifest/claims/ naming `../../pwned.jpg` + `rename SRC DST`", "CLI",
               failure(done, dst / "manifest.jsonl", "IMG_0002.JPG", base, "was refused"), compared(before, checksum_listing(base, skip=dst)))


def mailed_undo_local(t: Trial) -> Row:
    """`renamer-ray undo ~/Downloads/undo.jsonl`, a file someone sent: its records name SRC as their
    root, but move the sibling folder's key into SRC (with and without size and mtime), or restore a
    photo of SRC from a record without them."""
    base, src, out = t.home("undo")
    key, mailed = out / "id_rsa", base / "Downloads" / "undo.jsonl"
    write_jsonl(mailed, [
        planted_record(str(src / "data.db"), str(key), format=None, root=str(src)),
        planted_record(str(src / "id_rsa.jpg"), str(key), root=str(src), **stat_fields(key)),
        planted_record(str(src / "restored.jpg"), str(src / "IMG_0003.HEIC"), root=str(src))])
    before = checksum_listing(base, skip=src)
    done = t.cli("undo", mailed)
    return Row("hand-made undo file sent to the user (records without size/mtime, a target in the sibling "
               "folder) + `undo FILE`", "CLI", said(done, "refused, nothing moved", base),
               compared(before, checksum_listing(base, skip=src)))


def mailed_undo_s3(t: Trial) -> Row:
    """The same for an S3 tree: a record whose renamed object is in another bucket (its metadata
    says an in-place run made it), and one without a size."""
    from renamer_ray.io.storage import FINGERPRINT_KEY

    root, body, mailed = "s3://trust-undo/photos", b"the owner's object", t.work / "Downloads" / "undo-s3.jsonl"
    t.put("trust-undo-other", {"secret.jpg": body}, Metadata={FINGERPRINT_KEY: "trust-undo/photos/secret.jpg@0"})
    t.put("trust-undo", {"photos/red-circle.jpg": body}, Metadata={FINGERPRINT_KEY: "trust-undo/photos/IMG_0009.JPG@0"})
    write_jsonl(mailed, [
        planted_record(f"{root}/secret.jpg", "s3://trust-undo-other/secret.jpg", size=len(body), mtime=1.0, root=root),
        planted_record(f"{root}/IMG_0009.JPG", f"{root}/red-circle.jpg", root=root)])
    before = t.s3_outside("trust-undo/photos/", "trust-undo", "trust-undo-other")
    done = t.cli("undo", mailed)
    return Row("hand-made undo file for s3://…/photos (a renamed object in another bucket, a record without a size) "
               "+ `undo FILE`", "S3", said(done, "refused, nothing moved", example="another bucket"),
               compared(before, t.s3_outside("trust-undo/photos/", "trust-undo", "trust-undo-other")))


def symlink_out(t: Trial) -> Row:
    """SRC/beach.jpg a symbolic link to the sibling folder's photo, SRC/trip one to the folder."""
    base, src, out = t.home("symlink")
    os.symlink(out / "photo.jpg", src / "beach.jpg")
    os.symlink(out, src / "trip")
    before = checksum_listing(base, skip=src)
    done = t.cli("rename", src, "--in-place")
    manifest = src / ".renamer-ray" / "manifest.jsonl"
    entered = manifest.is_file() and any(r.relative.startswith("trip/") for r in parse_lines(manifest.read_text()))
    return Row("symbolic links in SRC leading out (a file, a folder) + `rename SRC --in-place`", "CLI",
               failure(done, manifest, "beach.jpg", base, "leads out") + ("; the folder link: ENTERED" if entered else ""),
               compared(before, checksum_listing(base, skip=src)))


def project_config(t: Trial) -> Row:
    """`renamer-ray rename` run in a cloned folder whose renamer-ray.toml sets ENGINE_URL."""
    base, src, _ = t.home("project")
    project, dst = base / "cloned", base / "named"
    project.mkdir()
    (project / "renamer-ray.toml").write_text('ENGINE_URL = "http://attacker.example/v1"\n')
    before = checksum_listing(base, skip=dst)
    done = t.cli("rename", src, dst, cwd=project)
    started = " (DST WRITTEN)" if dst.exists() else ""
    return Row("project-folder renamer-ray.toml setting ENGINE_URL + `rename SRC DST` in that folder", "CLI",
               said(done, "error:", t.work) + started, compared(before, checksum_listing(base, skip=dst)))


def http_answer(response: httpx.Response) -> str:
    """``status: detail`` (FastAPI's ``detail``, the chat route's ``error.message``, or the text)."""
    try:
        body = response.json()
        detail = body.get("detail") or body.get("error", {}).get("message") or body
    except (ValueError, AttributeError):
        detail = response.text
    flag = "SERVER ERROR " if response.status_code >= 500 else ""
    return short(f"{flag}{response.status_code}: {detail}")


def http_cases(t: Trial) -> list[Row]:
    """The inputs that once gave a 500, a cross-site POST and a foreign Host header, each against the
    stack's API; around each, the objects of another namespace in the stack's buckets (planted here),
    the caller's own job list and its own keys in them."""
    settings, api, image = t.stack.settings, t.stack.api, photo()
    own = f"{settings.default_namespace}/"
    t.put(settings.s3_in_bucket, {"neighbour/jobs/jr_00000000000000aa/input/0001.jpg": image})
    t.put(settings.s3_out_bucket, {"neighbour/jobs/jr_00000000000000aa/output/red-square.jpg": image})

    buckets = (settings.s3_in_bucket, settings.s3_out_bucket)

    def state() -> tuple[dict, list, set]:
        """(other namespaces' objects, the caller's jobs, the caller's keys in the stack's buckets)"""
        return (t.s3_outside(tuple(f"{bucket}/{own}" for bucket in buckets), *buckets),
                [job["job_id"] for job in httpx.get(f"{api}/v1/jobs?limit=100", timeout=60).json()["jobs"]],
                {f"{bucket}/{key}" for bucket in buckets for key in t.keys(bucket, own)})

    def job(data=None, headers=None) -> httpx.Response:
        return httpx.post(f"{api}/v1/jobs/rename", files=[("files", ("a.jpg", image))], data=data or {},
                          headers=headers or {}, timeout=120)

    boundary = "b" * 300
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.jpg\"\r\n\r\n"
                 ).encode() + image + f"\r\n--{boundary}--\r\n".encode()
    requests = {
        "multipart boundary of 300 characters": lambda: httpx.post(
            f"{api}/v1/jobs/rename", content=multipart, timeout=120,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}),
        "`first_index` of \"²\"": lambda: job({"first_index": "²"}),
        "`callback_url` of `http://[::1/`": lambda: job({"callback_url": "http://[::1/"}),
        "`callback_url` with port 99999": lambda: job({"callback_url": "https://example.com:99999/hook"}),
        "chat body of 100,000 `[` (POST /v1/chat/completions)": lambda: httpx.post(
            f"{api}/v1/chat/completions", content=b"[" * 100_000, timeout=120,
            headers={"Content-Type": "application/json"}),
        "cross-site POST of a job (Origin: https://attacker.example)": lambda: job(
            headers={"Origin": "https://attacker.example"}),
        "POST of a job with a foreign Host header (DNS rebinding: attacker.example)": lambda: job(
            headers={"Host": f"attacker.example:{settings.api_port}"}),
    }
    rows = []
    for case, send in requests.items():
        before = state()
        answer = send()
        after = state()
        rows.append(Row(case, "HTTP", http_answer(answer), "; ".join((
            "other namespaces " + compared(before[0], after[0]),
            "no job created" if before[1] == after[1] else "A JOB WAS CREATED",
            "nothing stored" if before[2] == after[2] else "CHANGED: the caller's own keys"))))
    return rows


CASES = (src_manifest_local, src_manifest_s3, dst_manifest, dst_claim, mailed_undo_local, mailed_undo_s3,
         symlink_out, project_config)


def trust_cases(stack, work: Path) -> list[Row]:
    """Every trust case through its ways in, against the running ``stack``, in scratch folders under
    ``work``. A case whose own set-up fails is a row saying so (the others still run)."""
    trial = Trial(stack, work)
    rows = []
    for case in CASES:
        try:
            rows.append(case(trial))
        except Exception as exc:  # the script's own failure, shown in the table rather than ending it
            rows.append(Row(case.__name__, "?", short(f"SCRIPT FAILED: {type(exc).__name__}: {exc}"), "not checked"))
    return rows + http_cases(trial)


def holes(rows: list[Row]) -> list[Row]:
    """Rows where something outside the tree changed, a 5xx came back or the script failed."""
    return [row for row in rows if "CHANGED" in row.outside or "A JOB" in row.outside or "not checked" in row.outside
            or "SERVER ERROR" in row.answer or "SCRIPT FAILED" in row.answer]


def trust_lines(rows: list[Row], seconds: float) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| case | way in | answer | outside the tree |", "|---|---|---|---|"]
    lines += [f"| {cell(r.case)} | {r.way} | {cell(r.answer)} | {cell(r.outside)} |" for r in rows]
    lines += ["", f"{len(rows)} cases in {seconds:.0f} s against one local stack (toy model, the CLI through its Ray "
                  "and warm namer, S3 its embedded endpoint); outside the tree: a checksum listing of the sibling "
                  "folder, the other buckets and prefixes (for HTTP: another namespace's objects in the stack's "
                  "buckets, the caller's job list and keys) before and after; "
                  f"{len(holes(rows))} holes; machine: {os.cpu_count()} CPUs."]
    return lines


def with_section(text: str, title: str, body: str) -> str:
    """The markdown ``text`` with its section headed ``## {title}…`` (to the next ``## ``) replaced
    by ``body``, or with ``body`` appended where it has none."""
    found = re.search(rf"^## {re.escape(title)}.*?(?=^## |\Z)", text, re.M | re.S)
    if not found:
        return text + "\n" + body
    return text[:found.start()] + body + ("\n" if found.end() < len(text) else "") + text[found.end():]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--trust-only", action="store_true", help="only the trust cases, not the image corpus")
    args = parser.parse_args()
    os.environ.setdefault("MODEL_ID", "toy-shapes")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    from renamer_ray.config import load_settings
    from renamer_ray.service.local.ports import free_ports
    from renamer_ray.service.local.stack import LocalStack

    items = [] if args.trust_only else corpus()
    if items:
        peaks = decode_peaks(items, load_settings())
        bounds = decode_peaks(largest_allowed(), load_settings())
        memory = PeakMemory()
    work = Path(tempfile.mkdtemp())
    settings = load_settings(api_port=free_ports(1)[0], max_jobs_in_flight=1000)
    stack = LocalStack(settings, workdir=work / "stack", dashboard_port=free_ports(1)[0])
    stack.start()
    try:
        started = time.monotonic()
        rows = image_corpus(stack, work, items) if items else {}
        corpus_seconds = time.monotonic() - started
        started = time.monotonic()
        trust = trust_cases(stack, work / "trust")
        trust_seconds = time.monotonic() - started
    finally:
        stack.stop()
        if items:
            memory.stop.set()
    stamp = time.strftime("%Y-%m-%d")
    text = DOC.read_text()
    if items:
        lines = corpus_lines(items, rows, peaks, bounds, memory, corpus_seconds)
        print("\n".join(lines))
        text += (f"\n## Hostile-input corpus through every way in ({stamp}: `python scripts/hostile_corpus.py`)\n\n"
                 + "\n".join(lines) + "\n")
    lines = trust_lines(trust, trust_seconds)
    print("\n".join(lines))
    title = "Trust cases through every way in"
    text = with_section(text, title, f"## {title} ({stamp}: `python scripts/hostile_corpus.py --trust-only`)\n\n"
                        + "\n".join(lines) + "\n")
    if not args.no_write:
        DOC.write_text(text)
        print(f"written to {DOC}")
    for row in holes(trust):
        print(f"HOLE: {row.case} ({row.way}): {row.answer}; outside: {row.outside}", file=sys.stderr)
    sys.exit(1 if holes(trust) else 0)


if __name__ == "__main__":
    main()
