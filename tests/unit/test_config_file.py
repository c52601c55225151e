"""Settings from a renamer-ray.toml: the project folder's, the user's, or the one RENAMER_RAY_CONFIG
names; flags > environment > file > defaults, and `renamer-ray config` says where each came from."""

from __future__ import annotations

import pytest

from renamer_ray.cli import main
from renamer_ray.config import ConfigError, load_settings


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A project folder (the working directory) and a user config folder, both empty."""
    project, home = tmp_path / "project", tmp_path / "config-home"
    project.mkdir()
    (home / "renamer-ray").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.delenv("RENAMER_RAY_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in ("MODEL_ID", "BATCH_SIZE", "MAX_PIXELS", "API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    return project / "renamer-ray.toml", home / "renamer-ray" / "renamer-ray.toml"


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(places, monkeypatch):
    project, _ = places
    project.write_text('MODEL_ID = "toy-shapes"\nbatch_size = 4\nMAX_PIXELS = 401408\n')
    monkeypatch.setenv("BATCH_SIZE", "6")
    settings = load_settings(max_pixels=200_704)
    assert (settings.model_id, settings.batch_size, settings.max_pixels, settings.api_port) == (
        "toy-shapes", 6, 200_704, 80)


def test_the_project_file_beats_the_users_file(places):
    project, user = places
    user.write_text('model_id = "from-user"\nbatch_size = 3\n')
    assert load_settings().model_id == "from-user"
    project.write_text('model_id = "from-project"\n')
    settings = load_settings()
    assert (settings.model_id, settings.batch_size) == ("from-project", 3)


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
    project, _ = places
    project.write_text('model_id = "toy-shapes"\nAPI_KEYS = "secret-key:team"\n')
    monkeypatch.setenv("BATCH_SIZE", "5")
    assert main(["config"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert lines["MODEL_ID"][1:] == ["'toy-shapes'", str(project)]
    assert lines["BATCH_SIZE"][1:] == ["5", "environment"]
    assert lines["MAX_PIXELS"][1:] == ["786432", "default"]
    assert lines["API_KEYS"][1] == "***" and "secret-key" not in " ".join(lines["API_KEYS"])
