"""The vLLM engine's own lock, `constraints-vllm.txt`: check that it still resolves, or write it again.

`constraints.txt` (scripts/lock.py) pins torch 2.14.1 for the default engine; vLLM pins its own torch
(vLLM 0.29.0, the one Ray 2.60's `llm` extra pins, requires torch==2.13.0), so no vLLM resolves with
`constraints.txt` and the `vllm` extra gets a lock of its own, for GPU nodes (or their own image)::

    pip install -c constraints-vllm.txt '.[vllm]'

This script asks PyPI, so it is a script, not a test (tests reach no registry)::

    .venv/bin/python scripts/check_vllm_lock.py          # check: exit 0 when the lock resolves and agrees
    .venv/bin/python scripts/check_vllm_lock.py --write  # resolve '.[vllm]' from nothing, write the lock

A check resolves ``.[vllm]`` with pip's own resolver (``install --dry-run --ignore-installed
--report``) constrained by the lock, and fails (exit 1, one line per problem) when that does not
resolve, when it would install a package the lock does not pin, when the lock pins a package the
install does not need (a stale line), or when the lock's transformers differs from
`constraints.txt`'s (both engines run the same transformers; vLLM dictates only torch and what
comes with it).

pip runs isolated from this machine's pip settings: no config file (``PIP_CONFIG_FILE=/dev/null``:
a site config may cap torch, as this project's build VM does with ``torch<=2.14.1``), no
``PIP_*`` variables (a ``PIP_FIND_LINKS`` folder of CPU-only wheels would satisfy ``torch==2.13.0``
with ``2.13.0+cpu``), and PyPI as the only index (``--index-url`` to change it; ``PIP_CERT`` is
passed on as ``--cert``). The lock is for CPython 3.11 on Linux x86_64, the cluster's node image
(rayproject/ray:2.60.0-py311-gpu): run this script with such a Python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints-vllm.txt"
DEFAULT_LOCK = ROOT / "constraints.txt"
PYPI = "https://pypi.org/simple"
TARGET = ((3, 11), "Linux", "x86_64")
SAME_AS_DEFAULT = ("transformers",)  # pinned to constraints.txt's version in both locks


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
    return env


def resolve(index_url: str, constraints: list[str], extra: list[str] | None = None) -> tuple[dict[str, str], str]:
    """({name: version} pip would install for '.[vllm]' from nothing, pip's error output or '')."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cert = ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []
        command = [sys.executable, "-m", "pip", "--isolated", "install", "--quiet", "--dry-run", "--ignore-installed",
                   "--disable-pip-version-check", "--index-url", index_url, *cert, "--report", str(report),
                   *constraints, *(extra or []), f"{ROOT}[vllm]"]
        done = subprocess.run(command, env=pip_env(), capture_output=True, text=True)
        if done.returncode != 0:
            return {}, (done.stderr or done.stdout).strip()
        installed = json.loads(report.read_text())["install"]
    pins = {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in installed}
    pins.pop("renamer-ray", None)
    return pins, ""


def problems(lock: dict[str, str], resolved: dict[str, str], default: dict[str, str]) -> list[str]:
    """What is wrong with the lock, given what pip resolved with it (empty: nothing)."""
    found = []
    for name in sorted(resolved):
        if name not in lock:
            found.append(f"{name}=={resolved[name]} is installed but not pinned in {LOCK.name}")
        elif resolved[name] != lock[name]:
            found.append(f"{name}: the lock pins {lock[name]}, pip resolved {resolved[name]}")
    for name in sorted(set(lock) - set(resolved)):
        found.append(f"{name}=={lock[name]} is pinned in {LOCK.name} but '.[vllm]' does not install it (stale)")
    for name in SAME_AS_DEFAULT:
        if name in default and lock.get(name) != default[name]:
            found.append(f"{name}: {LOCK.name} pins {lock.get(name)}, {DEFAULT_LOCK.name} {default[name]} "
                         f"(both engines run the same {name})")
    for name in ("vllm", "torch"):
        if name not in lock:
            found.append(f"{LOCK.name} pins no {name}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="resolve '.[vllm]' from nothing and write the lock")
    parser.add_argument("--index-url", default=PYPI, help=f"the package index (default {PYPI})")
    args = parser.parse_args(argv)

    here = (sys.version_info[:2], platform.system(), platform.machine())
    if here != TARGET:
        print(f"the vLLM lock is for CPython 3.11 on Linux x86_64 (the node image) and this is Python "
              f"{here[0][0]}.{here[0][1]} on {here[1]} {here[2]}: run this script with such a Python "
              f"(e.g. .venv/bin/python)", file=sys.stderr)
        return 2
    default = read_pins(DEFAULT_LOCK)
    started = time.perf_counter()
    if args.write:
        same = [f"{name}=={default[name]}" for name in SAME_AS_DEFAULT if name in default]
        resolved, error = resolve(args.index_url, [], same)
        if error:
            print(f"'.[vllm]' does not resolve from nothing with {', '.join(same)}:\n{error}", file=sys.stderr)
            return 1
        LOCK.write_text(
            "# The vLLM engine's lock (ENGINE=vllm, GPU nodes): `pip install -c constraints-vllm.txt '.[vllm]'`.\n"
            "# Its own file because vLLM pins its own torch (vllm " + resolved.get("vllm", "?") + " requires torch=="
            + resolved.get("torch", "?") + "), which `constraints.txt`\n"
            "# (torch " + default.get("torch", "?") + ", the default engine) cannot take. Resolved from nothing by\n"
            "# `python scripts/check_vllm_lock.py --write` on " + time.strftime("%Y-%m-%d")
            + " for CPython 3.11, Linux x86_64 (PyPI only, no pip config);\n"
            "# `python scripts/check_vllm_lock.py` checks that it still resolves. transformers is held at\n"
            "# constraints.txt's version: both engines run the same transformers.\n"
            + "".join(f"{name}=={resolved[name]}\n" for name in sorted(resolved)))
        print(f"{len(resolved)} pins written to {LOCK.name} in {time.perf_counter() - started:.0f} s: "
              + ", ".join(f"{n} {resolved[n]}" for n in ("vllm", "torch", "transformers", "ray") if n in resolved))
        return 0

    if not LOCK.exists():
        print(f"{LOCK.name} does not exist: run scripts/check_vllm_lock.py --write", file=sys.stderr)
        return 1
    lock = read_pins(LOCK)
    resolved, error = resolve(args.index_url, ["-c", str(LOCK)])
    if error:
        print(f"'.[vllm]' does not resolve with {LOCK.name}:\n{error}", file=sys.stderr)
        return 1
    found = problems(lock, resolved, default)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{LOCK.name} disagrees with what pip resolves ({len(found)} problem(s)): run "
              f"scripts/check_vllm_lock.py --write", file=sys.stderr)
        return 1
    print(f"{LOCK.name} resolves: '.[vllm]' installs exactly its {len(lock)} pins ("
          + ", ".join(f"{n} {lock[n]}" for n in ("vllm", "torch", "transformers", "ray") if n in lock)
          + f"; the default engine's {DEFAULT_LOCK.name}: torch {default.get('torch', '?')}), "
          f"checked against {args.index_url} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
