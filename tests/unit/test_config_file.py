"""Settings from a renamer-ray.toml: the project folder's, the user's, or the one RENAMER_RAY_CONFIG
names; flags > environment > file > defaults, and `renamer-ray config` says where each came from. The
project folder's file (whoever made the folder wrote it) may not set TRUSTED_ONLY settings."""

from __future__ import annotations

import os
import signal

import pytest

from renamer_ray.cli import main
from renamer_ray.config import SECRETS, TRUSTED_ONLY, ConfigError, Settings, load_settings, trusted_only


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A project folder (the working directory) and a user config folder, both empty."""
    project, home = tmp_path / "project", tmp_path / "config-home"
    project.mkdir()
    (home / "renamer-ray").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.delenv("RENAMER_RAY_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return project / "renamer-ray.toml", home / "renamer-ray" / "renamer-ray.toml"


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(places, monkeypatch):
    project, _ = places
    project.write_text('NAME_CASE = "snake"\nbatch_size = 4\nMAX_PIXELS = 401408\n')
    monkeypatch.setenv("BATCH_SIZE", "6")
    settings = load_settings(max_pixels=200_704)
    assert (settings.name_case, settings.batch_size, settings.max_pixels, settings.api_port) == (
        "snake", 6, 200_704, 80)


def test_the_project_file_beats_the_users_file(places):
    project, user = places
    user.write_text('name_template = "{date}-{subject}"\nbatch_size = 3\n')
    assert load_settings().name_template == "{date}-{subject}"
    project.write_text('name_template = "{subject}-{index}"\n')
    settings = load_settings()
    assert (settings.name_template, settings.batch_size) == ("{subject}-{index}", 3)


def test_a_bad_value_names_the_setting_and_the_file(places):
    project, _ = places
    project.write_text("batch_size = 0\n")
    with pytest.raises(ConfigError, match=r"BATCH_SIZE=0 \(in .*project/renamer-ray.toml\)"):
        load_settings()


def test_a_misspelled_key_or_broken_toml_is_an_error_not_ignored(places):
    project, _ = places
    project.write_text('modle_id = "toy-shapes"\n')
    with pytest.raises(ConfigError, match="unknown setting 'modle_id'"):
        load_settings()
    project.write_text('model_id = "unclosed\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_renamer_ray_config_names_one_file(places, tmp_path, monkeypatch):
    chosen = tmp_path / "elsewhere.toml"
    monkeypatch.setenv("RENAMER_RAY_CONFIG", str(chosen))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()
    chosen.write_text("batch_size = 2\n")
    places[0].write_text("batch_size = 9\n")  # not read: the named file replaces the usual places
    assert load_settings().batch_size == 2


def test_the_config_command_shows_values_and_where_they_came_from(places, monkeypatch, capsys):
    project, user = places
    user.write_text('model_id = "toy-shapes"\nAPI_KEYS = "secret-key:team"\n')
    project.write_text('name_case = "snake"\n')
    monkeypatch.setenv("BATCH_SIZE", "5")
    assert main(["config"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert lines["MODEL_ID"][1:] == ["'toy-shapes'", str(user)]
    assert lines["NAME_CASE"][1:] == ["'snake'", str(project)]
    assert lines["BATCH_SIZE"][1:] == ["5", "environment"]
    assert lines["MAX_PIXELS"][1:] == ["786432", "default"]
    assert lines["API_KEYS"][1] == "***" and "secret-key" not in " ".join(lines["API_KEYS"])


# A valid value for each trusted-only setting (TOML text); a setting added later without one here gets
# a plain string, or its default's type.
TRUSTED_VALUES = {
    "aws_region": '"eu-west-1"', "aws_endpoint_url": '"http://attacker.example:9000"',
    "s3_in_bucket": '"their-bucket"', "s3_out_bucket": '"their-bucket"',
    "sqs_queue_url": '"https://sqs.us-east-1.amazonaws.com/000000000000/theirs"',
    "model_id": '"./planted-checkpoint"', "engine": '"vllm"',
    "engine_url": '"http://attacker.example/v1"', "engine_api_key": '"sk-theirs"',
    "api_host": '"0.0.0.0"', "api_port": "8080", "api_keys": '"their-key:team"', "webhook_secret": '"known"',
    "callback_allow_private": "true", "url_expires_seconds": "604800",
    "webhook_secrets": '"team:their-secret"', "callback_allow_http": "true",
}
TRUSTED = sorted(name for name in Settings.model_fields if trusted_only(name))


def _toml_value(name: str) -> str:
    if name in TRUSTED_VALUES:
        return TRUSTED_VALUES[name]
    default = Settings.model_fields[name].default
    return "true" if isinstance(default, bool) else str(default) if isinstance(default, int | float) else '"x"'


def test_the_trusted_only_list_names_real_settings_and_covers_what_sends_loads_or_opens():
    assert TRUSTED_ONLY <= set(Settings.model_fields)
    assert set(SECRETS) <= set(TRUSTED)
    assert {"aws_endpoint_url", "sqs_queue_url", "s3_in_bucket", "s3_out_bucket", "engine_url", "engine_api_key",
            "api_keys", "webhook_secret", "model_id", "engine", "api_host", "callback_allow_private"} <= set(TRUSTED)
    # a setting added later is trusted-only by its name alone when it names a place or a secret
    assert all(trusted_only(name) for name in ("webhook_secrets", "callback_allowed_hosts", "ENGINE_URLS"))
    assert not any(trusted_only(name) for name in ("name_template", "name_case", "batch_size", "max_new_tokens",
                                                   "max_event_streams_per_key"))


@pytest.mark.parametrize("name", TRUSTED)
def test_the_project_file_may_not_set_a_trusted_only_setting(places, name, capsys):
    project, _ = places
    project.write_text(f"{name.upper()} = {_toml_value(name)}\nname_case = \"snake\"\n")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert f"./renamer-ray.toml sets {name.upper()}, which only the environment" in message and "\n" not in message
    assert main(["config"]) == 2  # the command says the same, in one line, and shows no setting
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"error: {message}"] and out == ""


@pytest.mark.parametrize("name", TRUSTED)
def test_the_users_file_and_renamer_ray_config_may_set_it(places, name, tmp_path, monkeypatch):
    _, user = places
    text = f"{name} = {_toml_value(name)}\n" + ('engine_url = "http://127.0.0.1:8000/v1"\n' if name == "engine" else "")
    user.write_text(text)
    import tomllib

    expected = tomllib.loads(text)[name]
    assert getattr(load_settings(), name) == expected
    user.unlink()
    chosen = tmp_path / "chosen.toml"
    chosen.write_text(text)
    monkeypatch.setenv("RENAMER_RAY_CONFIG", str(chosen))
    assert getattr(load_settings(), name) == expected


def test_every_refused_key_is_named_in_one_sentence(places):
    project, _ = places
    project.write_text('engine_url = "http://attacker.example/v1"\nENGINE_API_KEY = "sk"\nmodel_id = "./x"\n')
    with pytest.raises(ConfigError, match=r"sets ENGINE_API_KEY, ENGINE_URL and MODEL_ID, which only the environment"):
        load_settings()


def test_harmless_settings_in_the_project_file_still_apply(places):
    project, _ = places
    project.write_text('name_template = "{date}-{subject}"\nname_case = "title"\nname_max_chars = 40\n'
                       'name_max_words = 5\nname_language = "French"\nbatch_size = 2\nmax_new_tokens = 30\n'
                       'model_dtype = "float32"\n')
    settings = load_settings()
    assert (settings.name_template, settings.name_case, settings.name_max_chars, settings.name_max_words,
            settings.batch_size, settings.max_new_tokens, settings.model_dtype) == (
        "{date}-{subject}", "title", 40, 5, 2, 30, "float32")


def test_renamer_ray_config_may_name_the_project_file_on_purpose(places, monkeypatch):
    project, _ = places
    project.write_text('engine_url = "http://127.0.0.1:8000/v1"\n')
    monkeypatch.setenv("RENAMER_RAY_CONFIG", str(project))
    assert load_settings().engine_url == "http://127.0.0.1:8000/v1"


def test_in_the_users_own_config_folder_its_file_is_the_users(places, monkeypatch):
    _, user = places
    user.write_text('engine_url = "http://127.0.0.1:8000/v1"\n')
    monkeypatch.chdir(user.parent)
    assert load_settings().engine_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("target", ["a file elsewhere", "the user's file", "nothing"])
def test_a_symlinked_project_file_is_not_followed(places, tmp_path, target):
    project, user = places
    user.write_text("batch_size = 3\n")
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text("batch_size = 7\n")
    project.symlink_to({"a file elsewhere": elsewhere, "the user's file": user,
                        "nothing": tmp_path / "missing.toml"}[target])
    with pytest.raises(ConfigError, match=r"^\./renamer-ray.toml is not read: .* must be a regular file, and this is "
                                          r"a symbolic link"):
        load_settings()


def test_a_fifo_or_folder_as_the_project_file_is_refused_without_waiting(places):
    project, _ = places

    def stuck(*_):
        raise TimeoutError("reading the project file blocked")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(10)
    try:
        os.mkfifo(project)
        with pytest.raises(ConfigError, match="must be a regular file, and this is a FIFO"):
            load_settings()
        project.unlink()
        project.mkdir()
        with pytest.raises(ConfigError, match="must be a regular file, and this is a folder"):
            load_settings()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_every_command_says_which_files_it_read(places, capsys):
    project, user = places
    assert main(["config"]) == 0
    assert [line for line in capsys.readouterr().err.splitlines()] == ["config: no config file"]
    project.write_text('name_case = "snake"\n')
    assert main(["config"]) == 0
    assert capsys.readouterr().err.splitlines() == ["config: read ./renamer-ray.toml"]
    user.write_text("batch_size = 3\n")
    assert main(["config"]) == 0
    assert capsys.readouterr().err.splitlines() == [f"config: read {user}, ./renamer-ray.toml"]


def test_secrets_come_from_the_folder_renamer_ray_secrets_dir_names(tmp_path, monkeypatch):
    """How the cluster gives its processes API keys and webhook secrets without a runtime_env (which
    Ray's dashboard shows): one file per setting in a folder mounted on every node."""
    from renamer_ray.config import ConfigError, load_settings, setting_sources

    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    (folder / "api_keys").write_text("k-0123456789abcdef:team-a\n")
    (folder / "WEBHOOK_SECRET").write_text("from-the-folder")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("API_KEYS", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RENAMER_RAY_SECRETS_DIR", str(folder))
    settings = load_settings()
    assert settings.key_namespaces == {"k-0123456789abcdef": "team-a"}
    assert settings.webhook_secret == "from-the-folder"
    assert setting_sources()["api_keys"].startswith("RENAMER_RAY_SECRETS_DIR")
    monkeypatch.setenv("WEBHOOK_SECRET", "from-the-environment")  # the environment still wins
    assert load_settings().webhook_secret == "from-the-environment"
    monkeypatch.setenv("RENAMER_RAY_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="RENAMER_RAY_SECRETS_DIR names .*missing, which is not a folder"):
        load_settings()
