"""Settings from flags, the environment, the secrets folder and optional ``renamer-ray.toml`` files,
validated at start-up. Precedence: flags > environment > secrets folder > files > defaults. The
project folder's file may not set the TRUSTED_ONLY settings (where data goes, secrets, code, the service).

``settings.py`` holds the knobs, ``sources.py`` the files and the secrets folder, ``keys.py`` the
secret settings' formats, ``load.py`` the loading and its error messages."""

from renamer_ray.config.keys import SECRETS, key_bytes, parse_secrets
from renamer_ray.config.load import config_files_line, load_settings, setting_sources
from renamer_ray.config.settings import DEFAULT_MAX_NEW_TOKENS, Settings, is_loopback
from renamer_ray.config.sources import CONFIG_FILE, TRUSTED_ONLY, ConfigError, config_files, trusted_only

__all__ = ["CONFIG_FILE", "DEFAULT_MAX_NEW_TOKENS", "SECRETS", "TRUSTED_ONLY", "ConfigError", "Settings",
           "config_files", "config_files_line", "is_loopback", "key_bytes", "load_settings", "parse_secrets",
           "setting_sources", "trusted_only"]
