"""Loading the settings at start-up: flags > environment > secrets folder > renamer-ray.toml > defaults,
with where each value came from, and errors that name the variable (and the file) at fault."""

from __future__ import annotations

import os
import re

from pydantic import ValidationError
from pydantic_settings import SettingsError

from renamer_ray.config.keys import SECRETS
from renamer_ray.config.settings import Settings
from renamer_ray.config.sources import (SECRETS_DIR_VARIABLE, ConfigError, read_config_files, read_files,
                                        secrets_dir, secrets_in_dir, shown)


def config_files_line() -> str:
    """One line saying which settings files were read (each command prints it on stderr)."""
    read = [shown(path) for path, _ in read_files(Settings.model_fields)]
    return f"config: read {', '.join(read)}" if read else "config: no config file"


def setting_sources(overrides: dict | None = None) -> dict[str, str]:
    """Where each setting's effective value comes from: "flag", "environment", the secrets folder,
    the file, or "default"."""
    files = read_config_files(Settings.model_fields)
    environment = {name.lower() for name in os.environ}
    in_secrets, folder = secrets_in_dir(Settings.model_fields), secrets_dir()
    return {name: "flag" if name in (overrides or {}) else "environment" if name in environment
            else f"{SECRETS_DIR_VARIABLE} ({folder})" if name in in_secrets
            else str(files[name][1]) if name in files else "default"
            for name in Settings.model_fields}


def load_settings(**overrides) -> Settings:
    """Settings from flags (``overrides``), the environment and the config files; errors name the
    variable (and the file, for a value from a file)."""
    try:
        read_config_files(Settings.model_fields)  # a broken or misspelled file is named before anything else
        return Settings(**overrides)
    except SettingsError as exc:  # a JSON-valued variable (MODEL_ACTOR_RESOURCES) that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = field.group(1).upper() if field else "a variable"
        raise ConfigError(f"invalid configuration: {name} is not valid JSON (a JSON object is expected)") from None
    except ValidationError as exc:
        sources = setting_sources(overrides)

        def value(err: dict) -> str:
            """The value, but never a secret's (it would go to the console and the logs)."""
            return "'***'" if str(err["loc"][0]).lower() in SECRETS else repr(err.get("input"))

        def where(loc: tuple) -> str:
            source = sources.get(str(loc[0]).lower(), "default") if loc else "default"
            return "" if source in ("flag", "environment", "default") else f" (in {source})"

        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}={value(err)}{where(err['loc'])}: {err['msg']}"
            if err["loc"] else err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
