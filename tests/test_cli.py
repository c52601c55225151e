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
