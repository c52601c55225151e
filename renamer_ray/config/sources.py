"""Where settings come from besides flags and the environment: the ``renamer-ray.toml`` files (with
what the project folder's may not set, TRUSTED_ONLY) and the secrets folder (RENAMER_RAY_SECRETS_DIR)."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Collection
from pathlib import Path

from pydantic_settings import PydanticBaseSettingsSource

from renamer_ray.config.keys import SECRETS

CONFIG_FILE = "renamer-ray.toml"
SECRETS_DIR_VARIABLE = "RENAMER_RAY_SECRETS_DIR"

# Settings that only the user may choose: the environment, the user's own file (XDG config folder)
# or the file RENAMER_RAY_CONFIG names; a renamer-ray.toml in the project folder (the working
# directory: a cloned repository, a shared or downloaded folder) that sets one is refused. These are
# the settings that send images, job data or credentials somewhere, hold secrets, load code or a
# model, or open the service to the network. Any setting whose name has an endpoint, URL, host,
# bucket, queue, secret or key word in it (TRUSTED_ONLY_WORDS) is trusted-only as well, so a new
# CALLBACK_ALLOWED_HOSTS or STORE_URL is covered without an edit here; add the others by name.
TRUSTED_ONLY = frozenset({
    # where data and credentials go
    "aws_region", "aws_endpoint_url", "s3_in_bucket", "s3_out_bucket", "sqs_queue_url", "engine_url",
    *SECRETS,
    # code or a model that is loaded and run (a checkpoint folder may carry code; ENGINE=vllm imports vLLM)
    "model_id", "engine",
    # what the service opens, to whom, and for how long a download link works
    "api_host", "api_port", "callback_allow_private", "callback_allow_http", "url_expires_seconds",
})
TRUSTED_ONLY_WORDS = re.compile(  # a limit "…_per_key" is not a key
    r"(^|_)(endpoint|urls?|hosts?|buckets?|queues?|secrets?|passwords?|credentials?|(?<!per_)keys?)(_|$)")


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


def trusted_only(name: str) -> bool:
    """Whether setting ``name`` (any case) may come only from the environment or the user's own files."""
    return name.lower() in TRUSTED_ONLY or bool(TRUSTED_ONLY_WORDS.search(name.lower()))


def _user_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "renamer-ray" / CONFIG_FILE


def config_files() -> list[Path]:
    """The settings files read, lowest precedence first: the user's config folder
    (``$XDG_CONFIG_HOME/renamer-ray/``, else ``~/.config/renamer-ray/``), then the project folder
    (the working directory). ``RENAMER_RAY_CONFIG`` names one file instead (it must exist)."""
    if explicit := os.environ.get("RENAMER_RAY_CONFIG"):
        return [Path(explicit).expanduser()]
    user = _user_file()
    if _same_folder(Path.cwd(), user.parent):  # working in the user's own config folder: one file, the user's
        return [user]
    return [user, Path.cwd() / CONFIG_FILE]


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def shown(path: Path) -> str:
    """``path`` as a user reads it: ``./renamer-ray.toml`` in the working directory, ``~/…`` in the home."""
    for base, prefix in ((Path.cwd, "./"), (Path.home, "~/")):
        try:
            return prefix + str(path.relative_to(base()))
        except (ValueError, RuntimeError, OSError):  # elsewhere, or no home directory
            continue
    return str(path)


def _read_project_file(path: Path) -> str | None:
    """The project folder's file, only if it is a regular file: a symbolic link (which could point at
    any file of the user's) or a FIFO, device or folder at its place is refused without being read.
    Opened without following a link and without blocking, then checked, so nothing can swap it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    refusal = (f"{shown(path)} is not read: a project folder's {CONFIG_FILE} must be a regular file, and this is "
               "{what}; delete it, or point RENAMER_RAY_CONFIG at the file you mean to use")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise ConfigError(refusal.format(what="a symbolic link")) from None
        raise ConfigError(f"{shown(path)} cannot be read: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigError(refusal.format(what="a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                                         else "a device or socket"))
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def read_files(known: Collection[str]) -> list[tuple[Path, dict]]:
    """(file, its settings) for each file read, lowest precedence first; refuses a key that is not
    one of the ``known`` settings, and what the project folder's file may not set (TRUSTED_ONLY)."""
    files = config_files()
    if os.environ.get("RENAMER_RAY_CONFIG") and not files[0].is_file():
        raise ConfigError(f"RENAMER_RAY_CONFIG names {files[0]}, which is not a file")
    read = []
    for index, path in enumerate(files):
        project = len(files) == 2 and index == 1  # the working directory's: whoever made the folder wrote it
        if project:
            text = _read_project_file(path)
            if text is None:
                continue
        else:
            if not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        for key in data:
            if key.lower() not in known:
                raise ConfigError(f"{path}: unknown setting {key!r} (the settings are the environment variables "
                                  "in docs/configuration.md; `renamer-ray config` lists them)")
        if project and (refused := sorted(key.upper() for key in data if trusted_only(key))):
            names = " and ".join(", ".join(refused).rsplit(", ", 1))
            it = "it" if len(refused) == 1 else "them"
            raise ConfigError(
                f"{shown(path)} sets {names}, which only the environment, your own {shown(_user_file())} or the file "
                f"RENAMER_RAY_CONFIG names may set: a project folder's file could send your images or credentials "
                f"elsewhere, load code or open the service; remove {it} from {shown(path)}")
        read.append((path, data))
    return read


def read_config_files(known: Collection[str]) -> dict[str, tuple[object, Path]]:
    """Setting (lower case) → (value, file) from the files that exist; the later file wins. Keys are
    the environment's names (``MODEL_ID`` or ``model_id``); a key not ``known`` is an error, since a
    typo in a file would otherwise be ignored silently, and so is a TRUSTED_ONLY key in the project file."""
    return {key.lower(): (value, path) for path, data in read_files(known) for key, value in data.items()}


def secrets_dir() -> Path | None:
    """The folder RENAMER_RAY_SECRETS_DIR names: one file per setting, named as the setting (``api_keys``,
    ``webhook_secret``, …), holding its value. How secrets reach Ray processes without a runtime_env
    (which Ray's dashboard shows): the cluster mounts the operator's folder on every node."""
    if not (folder := os.environ.get(SECRETS_DIR_VARIABLE)):
        return None
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{SECRETS_DIR_VARIABLE} names {path}, which is not a folder")
    return path


def secrets_in_dir(known: Collection[str]) -> set[str]:
    """The ``known`` settings (lower case) that the secrets folder sets."""
    folder = secrets_dir()
    return {p.name.lower() for p in folder.iterdir() if p.is_file()} & set(known) if folder else set()


class ConfigFilesSource(PydanticBaseSettingsSource):
    """The renamer-ray.toml files, exactly as ``read_config_files`` reads and checks them."""

    def get_field_value(self, field, field_name):  # unused: __call__ gives every value at once
        return None, field_name, False

    def __call__(self) -> dict:
        return {name: value for name, (value, _) in read_config_files(self.settings_cls.model_fields).items()}
