"""The console script as a user runs it (no Ray needed for these)."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("renamer-ray")


def run(*args, **env):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_console_script_lists_its_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "rename" in result.stdout and "apply" in result.stdout


def test_invalid_setting_stops_at_start_up_naming_the_variable(tmp_path):
    result = run("rename", str(tmp_path), str(tmp_path / "out"), MAX_PIXELS="lots")
    assert result.returncode == 2
    assert "MAX_PIXELS" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_source_folder_is_a_clear_error(tmp_path):
    result = run("rename", str(tmp_path / "nope"), str(tmp_path / "out"), "--model", "toy-shapes")
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_the_runtime_install_pulls_neither_the_local_stack_nor_test_tools():
    """`pip install .` (a GPU node's image) gets the service and the pipeline, not moto's server
    stack or an HTTP test client; the local stack is the `local` extra."""
    import re
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[<>=!~ ;]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert not runtime & {"moto", "httpx", "pytest", "psutil", "numpy", "tokenizers"}
    assert {re.split(r"[\[<>=!~ ;]", r)[0] for r in project["optional-dependencies"]["local"]} == {"moto", "httpx"}


def test_without_the_local_extra_the_service_runs_and_up_says_what_to_install():
    """With moto and httpx unimportable, every module a cluster node runs still imports, and
    `renamer-ray up` answers with one line saying what to install (exit 2), not a traceback."""
    blocked = "import sys; sys.modules.update(moto=None, httpx=None); "
    modules = ["renamer_ray.service.ingress", "renamer_ray.service.driver", "renamer_ray.service.webhooks",
               "renamer_ray.service.namer", "renamer_ray.pipeline.run", "renamer_ray.cli"]
    imported = subprocess.run([sys.executable, "-c", blocked + "; ".join(f"import {m}" for m in modules)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    up = subprocess.run([sys.executable, "-c", blocked + "from renamer_ray.cli import main; sys.exit(main(['up']))"],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 2 and up.stderr.strip().splitlines() == [
        "error: the local stack needs moto, which this install lacks: pip install 'renamer-ray[local]' "
        "(`make demo` installs it)"], up.stderr


def test_the_lock_pins_a_version_every_requirement_accepts():
    """constraints.txt (scripts/lock.py) pins every requirement of pyproject.toml, runtime and
    extras, at a version its range allows: the lock cannot silently drift from the project."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = Path(__file__).parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = dict(line.split("==") for line in (root / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    for requirement in requirements:
        if requirement.name == "renamer-ray":
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run scripts/lock.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])
