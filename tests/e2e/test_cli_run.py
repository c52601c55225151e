"""`renamer-ray rename` as a user runs it, on a real local Ray: one progress bar, Ctrl-C, the model."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from renamer_ray.cli import SAMPLES
from renamer_ray.naming import extension_for
from tests.support.images import drawn_files
from tests.support.output import said

SCRIPT = Path(sys.executable).with_name("renamer-ray")


def start(*args: str, **env: str) -> subprocess.Popen:
    """The CLI in a child whose Ctrl-C works (a background shell's children start with SIGINT ignored)."""
    return subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def digests(folder: Path) -> list[str]:
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                  if p.is_file() and "_manifest" not in p.parts and p.name != "manifest.jsonl")


def test_a_run_shows_one_progress_bar_of_its_own(tmp_path):
    """Not one bar per Ray Data operator: the run's own counts (images named of images listed, renamed,
    failed, rate); on a pipe, as a plain line every 2 s and one at the end."""
    shutil.copytree(SAMPLES, tmp_path / "photos")
    child = start("rename", str(tmp_path / "photos"), str(tmp_path / "named"), "--model", "toy-shapes")
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    assert re.search(r"^10/10 images named \(10 renamed, 0 failed\), [\d.]+ images/s$", err, re.MULTILINE), err
    for ray_data_progress in ("logging_progress", "Running Dataset", "execution finished", "Execution plan"):
        assert ray_data_progress not in err + out, "Ray Data's own progress output stays off"
    assert "10 renamed, 0 failed" in out


def test_ctrl_c_exits_130_and_the_same_command_finishes_the_run(tmp_path):
    src, dst = tmp_path / "photos", tmp_path / "named"
    src.mkdir()
    for number, (data, fmt, _) in enumerate(drawn_files(seed=1300, count=40, max_side=300)):
        (src / f"img_{number:03d}.{extension_for(fmt)}").write_bytes(data)
    command = ("rename", str(src), str(dst), "--model", "toy-shapes", "--batch-size", "2")
    child = start(*command)
    for line in child.stderr:  # the progress lines: interrupt once the model has named something
        if (named := re.match(r"(\d+)/\d+ images named", line)) and int(named.group(1)) > 0:
            child.send_signal(signal.SIGINT)
            break
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "interrupted: names given so far are kept; run the same command again to finish" in err
    assert "Traceback" not in err and not (dst / "manifest.jsonl").exists()

    again = start(*command)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "40 renamed, 0 failed" in out
    assert digests(dst) == digests(src), "every image once"
    assert not (dst / "_manifest").exists()


def test_a_model_that_cannot_be_had_is_one_line_before_ray_starts(tmp_path):
    """The default model is fetched before Ray starts (with its download bar); where it cannot be
    (no network, not in the cache), one line and exit 2, and nothing is created."""
    shutil.copytree(SAMPLES, tmp_path / "photos")
    child = start("rename", str(tmp_path / "photos"), str(tmp_path / "named"), "--model", "Qwen/Qwen2-VL-2B-Instruct",
                  HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 2, err
    lines = said(err)
    assert lines[0].startswith("downloading Qwen/Qwen2-VL-2B-Instruct into the Hugging Face cache")
    assert len(lines) == 2 and lines[1].startswith("error: the model 'Qwen/Qwen2-VL-2B-Instruct' is not a folder here")
    assert "core_worker" not in err and not (tmp_path / "named").exists()


def test_the_ray_a_run_starts_for_itself_keeps_to_this_machine(tmp_path):
    """`rename` without RAY_ADDRESS starts a Ray of its own: on 127.0.0.1 only (never the machine's
    own addresses, which Ray 2.60 would otherwise bind and announce) and with a token of its own,
    never Ray's default ~/.ray/auth_token (which Ray writes readable by every local user), removed
    when the run ends."""
    import psutil

    from tests.support.stack import own_ray_tmpdir

    home, ray_tmp, tmp = tmp_path / "home", Path(own_ray_tmpdir()), tmp_path / "tmp"  # Ray's socket paths stay short
    for folder in (home, tmp):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    result = subprocess.run([str(SCRIPT), "rename", str(SAMPLES), str(tmp_path / "named"), "--model", "toy-shapes"],
                            env={**env, "HOME": str(home), "RAY_TMPDIR": str(ray_tmp), "TMPDIR": str(tmp)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (home / ".ray").exists()  # no token where every local user can read it
    assert not list(tmp.glob("renamer-ray-*"))  # the run's own token is gone with it
    session = next(ray_tmp.rglob("session_2*"))
    text = "\n".join(p.read_text(errors="replace") for p in session.rglob("*") if p.is_file() and p.stat().st_size < 5e6)
    assert "127.0.0.1" in text
    own = {a.address for addresses in psutil.net_if_addrs().values() for a in addresses
           if a.family.name in ("AF_INET", "AF_INET6") and not a.address.startswith(("127.", "::1", "fe80"))}
    assert own and not [address for address in own if address in text], own
