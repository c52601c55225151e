"""The console script as a user runs it (no Ray needed for these)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.output import said

SCRIPT = Path(sys.executable).with_name("renamer-ray")


def run(*args, cwd=None, **env):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, cwd=cwd)


def test_console_script_lists_its_commands():
    result = run("--help")
    assert result.returncode == 0
    assert "rename" in result.stdout and "apply" in result.stdout


def test_invalid_setting_stops_at_start_up_naming_the_variable(tmp_path):
    result = run("rename", str(tmp_path), str(tmp_path / "out"), MAX_PIXELS="lots")
    assert result.returncode == 2
    assert "MAX_PIXELS" in result.stderr
    assert not (tmp_path / "out").exists()


NO_CREDENTIALS = dict(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                      AWS_CONFIG_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    import boto3

    name = f"cli-{uuid.uuid4().hex[:6]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="photos/a.png", Body=b"\x89PNG")
    return name


@pytest.mark.parametrize("case", ["bad scheme", "missing folder", "folder without images", "missing bucket",
                                  "mistyped prefix", "missing output bucket", "no credentials", "broken plan"])
def test_an_expected_error_is_one_line_exit_2_and_touches_nothing(case, tmp_path, s3_endpoint, bucket):
    """What a user mistypes or lacks is said in one line before Ray starts (seconds, not a cluster
    start) and leaves nothing behind: no DST, no _manifest folder."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not an image")
    (tmp_path / "plan.jsonl").write_text('{"source": "a.jpg", "status": "ok", "name": "a.jpg"}\n{oops\n')
    out, env = str(tmp_path / "out"), {"AWS_ENDPOINT_URL": s3_endpoint}
    args, expected = {
        "bad scheme": (["ftp://host/photos", out], "unsupported location 'ftp://host/photos'"),
        "missing folder": ([str(tmp_path / "nope"), out], f"no images under {tmp_path / 'nope'}"),
        "folder without images": ([str(tmp_path / "notes"), out], "no images under"),
        "missing bucket": (["s3://no-such-bucket-here/photos", out], "the bucket does not exist"),
        "mistyped prefix": ([f"s3://{bucket}/fotos", out], f"no images under s3://{bucket}/fotos"),
        "missing output bucket": ([f"s3://{bucket}/photos", "s3://no-such-bucket-here/out"],
                                  "DST s3://no-such-bucket-here/out: the bucket does not exist"),
        "no credentials": ([f"s3://{bucket}/photos", out], "no AWS credentials were found"),
        "broken plan": (["apply", str(tmp_path / "plan.jsonl"), out], "the manifest is not valid"),
    }[case]
    if case == "no credentials":
        env.update(NO_CREDENTIALS)
    command = args if args[0] == "apply" else ["rename", *args, "--model", "toy-shapes"]
    result = run(*command, **env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and "ray" not in result.stderr.lower().replace("renamer-ray", "")
    if command[0] == "rename":
        assert len(said(result.stderr)) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_version_and_help_say_what_a_user_needs():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("renamer-ray ")
    help_text = run("--help").stdout
    assert "examples:" in help_text and "renamer-ray rename" in help_text
    assert "MODEL_ID" in help_text and "renamer-ray.toml" in help_text and "130 interrupted" in help_text


def test_the_runtime_install_pulls_neither_the_local_stack_nor_test_tools():
    """`pip install .` (a GPU node's image) gets the service and the pipeline, not moto's server
    stack or an HTTP test client; the local stack is the `local` extra."""
    import re
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[\[<>=!~ ;]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert not runtime & {"moto", "httpx", "httpx-sse", "pytest", "psutil", "numpy", "tokenizers"}
    assert {re.split(r"[\[<>=!~ ;]", r)[0] for r in project["optional-dependencies"]["local"]} == {
        "moto", "httpx", "httpx-sse"}


def test_without_the_local_extra_the_service_runs_and_up_says_what_to_install():
    """With moto and httpx unimportable, every module a cluster node runs still imports, and
    `renamer-ray up` and `submit` answer with one line saying what to install (exit 2), not a traceback."""
    blocked = "import sys; sys.modules.update(moto=None, httpx=None); "
    modules = ["renamer_ray.service.ingress", "renamer_ray.service.driver", "renamer_ray.service.webhooks",
               "renamer_ray.service.namer", "renamer_ray.pipeline.run", "renamer_ray.cli"]
    imported = subprocess.run([sys.executable, "-c", blocked + "; ".join(f"import {m}" for m in modules)],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    up = subprocess.run([sys.executable, "-c", blocked + "from renamer_ray.cli import main; sys.exit(main(['up']))"],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 2 and said(up.stderr) == [
        "error: the local stack needs moto, which this install lacks: pip install 'renamer-ray[local]' "
        "(`make demo` installs it)"], up.stderr
    submit = subprocess.run([sys.executable, "-c", blocked + "from renamer_ray.cli import main; "
                             "sys.exit(main(['submit', '.']))"], capture_output=True, text=True, timeout=120)
    assert submit.returncode == 2 and said(submit.stderr) == [
        "error: talking to the service needs httpx and httpx_sse, which this install lacks: pip install "
        "'renamer-ray[local]' (`make demo` installs it)"], submit.stderr


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


@pytest.fixture
def folder(tmp_path):
    """A project folder to work in (a cloned repository, say) and an empty user config folder: the
    usual places, not the suite's RENAMER_RAY_CONFIG; nothing from the real home directory."""
    (tmp_path / "project" / "photos").mkdir(parents=True)
    (tmp_path / "project" / "photos" / "a.png").write_bytes(b"\x89PNG")
    (tmp_path / "config-home" / "renamer-ray").mkdir(parents=True)
    return tmp_path / "project", dict(RENAMER_RAY_CONFIG="", XDG_CONFIG_HOME=str(tmp_path / "config-home"),
                                      HF_HOME=str(tmp_path / "hf"))


def as_said(path: Path) -> str:
    """A path as the CLI writes it: under the home directory as ~/…"""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def test_a_project_file_that_sets_where_images_go_is_refused_before_anything_starts(folder, tmp_path):
    project, env = folder
    (project / "renamer-ray.toml").write_text('ENGINE = "openai"\nENGINE_URL = "http://attacker.example/v1"\n'
                                              'name_case = "snake"\n')
    result = run("rename", "photos", "out", cwd=project, **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: ./renamer-ray.toml sets ENGINE and ENGINE_URL, which only the environment, your own "
        f"{as_said(tmp_path / 'config-home/renamer-ray/renamer-ray.toml')} or the file RENAMER_RAY_CONFIG names "
        "may set: a project folder's file could send your images or credentials elsewhere, load code or open the "
        "service; remove them from ./renamer-ray.toml"]
    assert not (project / "out").exists() and not (project / ".renamer-ray").exists()
    assert not (tmp_path / "hf").exists(), "no model was fetched"
    # the same keys in the user's own file are taken
    (project / "renamer-ray.toml").rename(tmp_path / "config-home" / "renamer-ray" / "renamer-ray.toml")
    listed = run("config", cwd=project, **env)
    assert listed.returncode == 0 and "'http://attacker.example/v1'" in listed.stdout, listed.stderr


@pytest.mark.parametrize("files", ["none", "project", "both"])
def test_every_command_says_which_config_files_it_read(folder, files, tmp_path):
    project, env = folder
    if files in ("project", "both"):
        (project / "renamer-ray.toml").write_text('name_case = "snake"\n')
    if files == "both":
        (tmp_path / "config-home" / "renamer-ray" / "renamer-ray.toml").write_text("batch_size = 3\n")
    expected = {"none": "config: no config file", "project": "config: read ./renamer-ray.toml",
                "both": f"config: read {as_said(tmp_path / 'config-home/renamer-ray/renamer-ray.toml')}, "
                        "./renamer-ray.toml"}[files]
    for command in (["config"], ["rename", "no-such-folder", "out", "--model", "toy-shapes"],
                    ["apply", "no-plan.jsonl", "out"], ["undo", "no-manifest.jsonl"],
                    ["submit", "no-such-folder", "--api", "http://127.0.0.1:9"]):
        result = run(*command, cwd=project, **env)
        lines = result.stderr.strip().splitlines()
        assert lines[0] == expected and lines.count(expected) == 1, (command, result.stderr)
        assert [line for line in lines if line.startswith("config:")] == [expected], (command, result.stderr)
