"""Write `constraints.txt`: the exact versions pip resolves for the project with every extra, from
nothing (pip's own resolver, `--dry-run --ignore-installed --report`), so that `make`, CI and the
node image install the same packages. Run it after changing a dependency in pyproject.toml:

    .venv/bin/python scripts/lock.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the Makefile installs before the project (from this machine's disk; the same in CI).
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *TORCH, f"{ROOT}[dev,local]"], check=True)
        resolved = json.loads(report.read_text())["install"]
    from packaging.utils import canonicalize_name

    pins = sorted({f"{canonicalize_name(item['metadata']['name'])}=={item['metadata']['version']}"
                   for item in resolved if canonicalize_name(item["metadata"]["name"]) != "renamer-ray"})
    (ROOT / "constraints.txt").write_text(
        "# Exact versions of every package the project installs (`make`, CI, cluster/Dockerfile), resolved\n"
        "# from nothing by `python scripts/lock.py`. Regenerate it after changing pyproject.toml.\n"
        + "\n".join(pins) + "\n")
    print(f"{len(pins)} pins written to constraints.txt")


if __name__ == "__main__":
    main()
