"""Settings from flags, the environment (the seed's variables and defaults) and an optional
``renamer-ray.toml``, validated at start-up. Precedence: flags > environment > file > defaults. The
project folder's file may not set the TRUSTED_ONLY settings (where data goes, secrets, code, the service)."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict,
                               SettingsError)

if TYPE_CHECKING:
    from renamer_ray.io.storage import StorageConfig

# 15 tokens (the seed's value) cannot hold a 60-character name: Qwen2's BPE spends ~3-4
# characters per token on kebab-case text and as little as 1 on rare words. The namer's
# constrained decoding stops on its own at 60 characters or 10 words, and every allowed token
# carries at least one character, so 60 new tokens can always reach the limit and never cut a
# name short; generation ends at the model's end token, so the bound costs nothing in practice.
DEFAULT_MAX_NEW_TOKENS = 60


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


CONFIG_FILE = "renamer-ray.toml"
SECRETS = ("api_keys", "webhook_secret", "webhook_secrets", "engine_api_key")   # shown as *** by `renamer-ray config`

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
    # secrets
    "api_keys", "webhook_secret", "webhook_secrets", "engine_api_key",
    # code or a model that is loaded and run (a checkpoint folder may carry code; ENGINE=vllm imports vLLM)
    "model_id", "engine",
    # what the service opens, to whom, and for how long a download link works
    "api_host", "api_port", "callback_allow_private", "callback_allow_http", "url_expires_seconds",
})
TRUSTED_ONLY_WORDS = re.compile(  # a limit "…_per_key" is not a key
    r"(^|_)(endpoint|urls?|hosts?|buckets?|queues?|secrets?|passwords?|credentials?|(?<!per_)keys?)(_|$)")


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


def _read_files() -> list[tuple[Path, dict]]:
    """(file, its settings) for each file read, lowest precedence first; refuses what the project
    folder's file may not set (TRUSTED_ONLY) and a key that is no setting."""
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
            if key.lower() not in Settings.model_fields:
                raise ConfigError(f"{path}: unknown setting {key!r} (the settings are the environment variables "
                                  "in the README's configuration table; `renamer-ray config` lists them)")
        if project and (refused := sorted(key.upper() for key in data if trusted_only(key))):
            names = " and ".join(", ".join(refused).rsplit(", ", 1))
            it = "it" if len(refused) == 1 else "them"
            raise ConfigError(
                f"{shown(path)} sets {names}, which only the environment, your own {shown(_user_file())} or the file "
                f"RENAMER_RAY_CONFIG names may set: a project folder's file could send your images or credentials "
                f"elsewhere, load code or open the service; remove {it} from {shown(path)}")
        read.append((path, data))
    return read


def read_config_files() -> dict[str, tuple[object, Path]]:
    """Setting (lower case) → (value, file) from the files that exist; the later file wins. Keys are
    the environment's names (``MODEL_ID`` or ``model_id``); an unknown key is an error, since a typo
    in a file would otherwise be ignored silently, and so is a TRUSTED_ONLY key in the project file."""
    return {key.lower(): (value, path) for path, data in _read_files() for key, value in data.items()}


def config_files_line() -> str:
    """One line saying which settings files were read (each command prints it on stderr)."""
    read = [shown(path) for path, _ in _read_files()]
    return f"config: read {', '.join(read)}" if read else "config: no config file"


SECRETS_DIR_VARIABLE = "RENAMER_RAY_SECRETS_DIR"


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


def secrets_in_dir() -> set[str]:
    """The settings (lower case) that the secrets folder sets."""
    folder = secrets_dir()
    return {p.name.lower() for p in folder.iterdir() if p.is_file()} & set(Settings.model_fields) if folder else set()


class _ConfigFilesSource(PydanticBaseSettingsSource):
    """The renamer-ray.toml files, exactly as ``read_config_files`` reads and checks them."""

    def get_field_value(self, field, field_name):  # unused: __call__ gives every value at once
        return None, field_name, False

    def __call__(self) -> dict:
        return {name: value for name, (value, _) in read_config_files().items()}


class Settings(BaseSettings):
    """Every knob, read from environment variables of the same name (upper-case)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Flags (keyword arguments) > environment > secrets folder > renamer-ray.toml files > defaults."""
        folder = secrets_dir()
        secrets = (SecretsSettingsSource(settings_cls, secrets_dir=folder),) if folder else ()
        return init_settings, env_settings, *secrets, _ConfigFilesSource(settings_cls)

    aws_region: str = Field("us-east-1", min_length=1)
    aws_endpoint_url: str | None = Field(None, description="S3/SQS-compatible endpoint (moto, MinIO, LocalStack)")
    s3_in_bucket: str = "renamer-ray-input"
    s3_out_bucket: str = "renamer-ray-output"
    sqs_queue_url: str | None = None
    model_id: str = Field("Qwen/Qwen2-VL-2B-Instruct", min_length=1,
                          description="hub id, local path, or `toy-shapes` for the bundled test checkpoint")
    max_pixels: int = Field(786_432, ge=28 * 28 * 4, le=28 * 28 * 16384)
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1, le=512)
    max_decode_pixels: int = Field(40_000_000, ge=1_000_000, le=178_956_970, description=(
        "largest image (in pixels) decoded at full size; JPEG decodes at reduced size and is exempt"))
    batch_size: int = Field(12, ge=1, le=1024, description=(
        "images per model call; unset, a bulk run's GPU actors take 64 rows at a time and cut them into "
        "model batches their card's free memory holds"))
    api_port: int = Field(80, ge=1, le=65535)
    model_device: Literal["auto", "cpu", "cuda"] = "auto"
    max_model_actors: int | None = Field(None, ge=1, le=4096, description=(
        "GPU model actors a run may scale to (default: the GPUs the cluster has now); set it on an "
        "autoscaling cluster so that runs ask the autoscaler for GPU nodes"))
    model_actor_resources: dict[str, float] = Field(default_factory=dict, description=(
        "custom Ray resources each model actor of a bulk run also requires, as a JSON object, e.g. "
        '{"namer-node": 1}: the actors go only to nodes that offer them'))
    model_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    model_static_cache: bool = Field(False, description=(
        "decode with a static KV cache, the decode step compiled on GPUs with bf16 (opt-in: not yet measured)"))
    name_template: str = Field("{subject}", min_length=1)
    name_case: Literal["kebab", "snake", "camel", "pascal", "title", "lower"] = Field(
        "kebab", description="default for --case: how names are written (naming/style.py)")
    name_max_chars: int = Field(60, ge=1, le=120, description="default for --max-chars")
    name_max_words: int = Field(10, ge=1, le=20, description="default for --max-words")
    name_language: str | None = Field(None, description="default for --language (none: English)")

    # The service (API + queue driver).
    api_host: str = "0.0.0.0"
    api_allowed_hosts: str = Field("", description=(
        "comma-separated host names the API answers to (its Host header; `*.example.com` allowed); others "
        "get 400 (DNS rebinding). Empty: localhost and 127.0.0.1 when API_HOST is loopback, else any"))
    api_keys: str = Field("", description="comma-separated KEY or KEY:namespace; empty = open API")
    default_namespace: str = Field("demo", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    max_files_per_job: int = Field(100, ge=1, le=9999)
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_job_bytes: int = Field(500 * 1024 * 1024, ge=1024)
    max_prompt_chars: int = Field(400, ge=0, le=10_000)
    max_jobs_in_flight: int = Field(50, ge=1, le=10_000, description=(
        "unfinished jobs one API key (namespace) may have; more get 429 with Retry-After"))
    max_chat_concurrency_per_key: int = Field(4, ge=1, le=1000, description=(
        "POST /v1/chat/completions requests one API key (namespace) may have running at once per API "
        "replica; more get 429 with Retry-After"))
    max_event_streams_per_key: int = Field(8, ge=1, le=1000, description=(
        "GET /v1/jobs/{id}/events streams one API key (namespace) may hold open at once per API replica; "
        "more get 429 with Retry-After"))
    request_timeout_seconds: float = Field(660, ge=630, le=24 * 3600, description=(
        "Serve's HTTP request timeout: bounds uploads and ZIP downloads; above the 600 s event-stream lifetime"))
    url_expires_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    sqs_wait_seconds: int = Field(20, ge=0, le=20, description="long-poll wait per receive")
    visibility_timeout: int = Field(120, ge=5, le=12 * 3600, description="seconds a received job stays hidden")
    heartbeat_seconds: float = Field(40, gt=0, description="how often a running job's visibility is extended")
    max_receives: int = Field(3, ge=1, le=1000, description="SQS maxReceiveCount before the DLQ")
    max_jobs_per_run: int = Field(16, ge=1, le=1000, description="small waiting jobs taken into one pipeline run")
    max_running: int = Field(4, ge=1, le=256, description="pipeline runs the driver keeps going at once")
    run_stall_seconds: float = Field(600, gt=0, description=(
        "a run that makes no progress this long is given up (its jobs retried, then failed)"))
    namer_min_replicas: int = Field(1, ge=0, le=1024, description="warm namer replicas kept (0: scale to zero)")
    namer_max_replicas: int = Field(1, ge=1, le=1024, description="namer replicas the service may scale to")
    namer_num_cpus: float = Field(1, ge=0, le=256, description="CPUs each namer replica reserves")
    webhook_secret: str | None = Field(None, description=(
        "key that signs job callbacks (Standard Webhooks; whsec_<base64> or any text) of namespaces "
        "without their own in WEBHOOK_SECRETS"))
    webhook_secrets: str = Field("", description=(
        "comma-separated namespace:secret: each namespace's callbacks signed with its own key "
        "(whsec_<base64> or any text without commas); the others with WEBHOOK_SECRET"))
    callback_allow_private: bool = Field(False, description=(
        "allow callback_url to reach loopback/private addresses (the local stack sets it)"))
    callback_allow_http: bool = Field(False, description=(
        "allow http:// callback_url (plain text: readable on the way); else https:// only"))

    @field_validator("webhook_secret", "webhook_secrets")
    @classmethod
    def _webhook_keys(cls, value: str | None, info) -> str | None:
        from renamer_ray.service.webhooks import key_bytes, parse_secrets

        if value and info.field_name == "webhook_secrets":
            parse_secrets(value)      # ValueError names the entry, never a secret
        elif value:
            key_bytes(value)
        return value

    # Which inference engine a run's model stage uses (README: "Other inference engines").
    engine: Literal["transformers", "openai", "vllm"] = Field("transformers", description=(
        "transformers: the run's own model actors; openai: an OpenAI-compatible endpoint (ENGINE_URL); "
        "vllm: Ray Data's vLLM processor (GPU, the `vllm` extra)"))
    engine_url: str | None = Field(None, description="base URL of the OpenAI-compatible API, e.g. http://host:8000/v1")
    engine_model: str | None = Field(None, description="model name sent to the endpoint (default: MODEL_ID)")
    engine_api_key: str | None = Field(None, description="Bearer key for the endpoint (a secret)")
    engine_concurrency: int = Field(8, ge=1, le=256, description="requests in flight per asking task")
    engine_timeout_seconds: float = Field(120, gt=0, le=3600, description="one request's time limit")
    engine_retries: int = Field(3, ge=0, le=10, description="retries on connection errors, 429 and 5xx")
    engine_structured: bool = Field(False, description=(
        "ask the endpoint for structured output: {\"name\": …} in the rules' words (response_format "
        "json_schema; vLLM, SGLang, Ollama, OpenAI and this service support it)"))

    @property
    def storage(self) -> StorageConfig:
        """How stages reach S3: region and endpoint."""
        from renamer_ray.io.storage import StorageConfig

        return StorageConfig(region=self.aws_region, endpoint_url=self.aws_endpoint_url)

    @property
    def driver_stale_seconds(self) -> float:
        """A driver that has not polled the queue this long is stuck: its health check fails and
        /ready answers 503. One long poll plus a margin for a loop step that meets a storage outage:
        the job records it reads then back off through their own retries (up to about a minute), and
        a replica restarted for that would only cut the jobs it runs short."""
        return self.sqs_wait_seconds + 90

    @property
    def allowed_hosts(self) -> list[str]:
        """The Host header values the API answers (API_ALLOWED_HOSTS, or its default)."""
        if names := [name.strip() for name in self.api_allowed_hosts.split(",") if name.strip()]:
            return names
        return ["localhost", "127.0.0.1"] if is_loopback(self.api_host) else ["*"]

    @property
    def key_namespaces(self) -> dict[str, str]:
        """API key → namespace. A key without ``:namespace`` gets one derived from its hash."""
        import hashlib

        out = {}
        for item in filter(None, (part.strip() for part in self.api_keys.split(","))):
            key, _, namespace = item.partition(":")
            out[key] = namespace or "k-" + hashlib.sha256(key.encode()).hexdigest()[:12]
        return out

    @property
    def naming_style(self):
        """The NAME_* settings as a ``NamingStyle`` (the default of every run and job)."""
        from renamer_ray.naming import NamingStyle

        return NamingStyle(case=self.name_case, max_chars=self.name_max_chars, max_words=self.name_max_words,
                           language=self.name_language)

    @field_validator("name_language")
    @classmethod
    def _a_language_name(cls, value: str | None) -> str | None:
        from renamer_ray.naming import NamingStyle, StyleError

        try:
            return NamingStyle.parse(language=value).language
        except StyleError as exc:
            raise ValueError(str(exc).removeprefix("language ")) from None

    @model_validator(mode="after")
    def _settings_that_can_work(self) -> "Settings":
        if self.namer_min_replicas > self.namer_max_replicas:
            raise ValueError("NAMER_MIN_REPLICAS must not exceed NAMER_MAX_REPLICAS")
        if self.heartbeat_seconds >= self.visibility_timeout:
            # The heartbeat would come after the message had become visible again: every running job
            # would be delivered a second time.
            raise ValueError(f"HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}) must be less than VISIBILITY_TIMEOUT "
                             f"({self.visibility_timeout}); a third of it is a good value")
        if self.engine == "openai" and not self.engine_url:
            raise ValueError("ENGINE=openai needs ENGINE_URL: the base URL of an OpenAI-compatible API "
                             "(e.g. http://127.0.0.1:8000/v1)")
        if self.engine_url and not re.match(r"^https?://[^/\s]+", self.engine_url):
            raise ValueError(f"ENGINE_URL must be an http:// or https:// URL, not {self.engine_url!r}")
        return self

    @field_validator("model_actor_resources")
    @classmethod
    def _custom_resources_only(cls, value: dict[str, float]) -> dict[str, float]:
        # Ray refuses CPU/GPU in `resources=` (they are num_cpus/num_gpus, which the run sets itself).
        if built_in := sorted(set(value) & {"CPU", "GPU", "memory", "object_store_memory"}):
            raise ValueError(f"only custom resources may be named here, not {', '.join(built_in)}")
        if negative := sorted(name for name, amount in value.items() if amount < 0):
            raise ValueError(f"resource amounts must not be negative: {', '.join(negative)}")
        return value

    @property
    def endpoint_model(self) -> str:
        """The model name sent to an OpenAI-compatible endpoint: ENGINE_MODEL, else MODEL_ID."""
        return self.engine_model or self.model_id

    @field_validator("aws_endpoint_url", "sqs_queue_url", "webhook_secret", "engine_url", "engine_model",
                     "engine_api_key")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


def setting_sources(overrides: dict | None = None) -> dict[str, str]:
    """Where each setting's effective value comes from: "flag", "environment", the secrets folder,
    the file, or "default"."""
    files = read_config_files()
    environment = {name.lower() for name in os.environ}
    in_secrets, folder = secrets_in_dir(), secrets_dir()
    return {name: "flag" if name in (overrides or {}) else "environment" if name in environment
            else f"{SECRETS_DIR_VARIABLE} ({folder})" if name in in_secrets
            else str(files[name][1]) if name in files else "default"
            for name in Settings.model_fields}


def load_settings(**overrides) -> Settings:
    """Settings from flags (``overrides``), the environment and the config files; errors name the
    variable (and the file, for a value from a file)."""
    try:
        read_config_files()  # a broken or misspelled file is named before anything else
        return Settings(**overrides)
    except SettingsError as exc:  # a JSON-valued variable (MODEL_ACTOR_RESOURCES) that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = field.group(1).upper() if field else "a variable"
        raise ConfigError(f"invalid configuration: {name} is not valid JSON (a JSON object is expected)") from None
    except ValidationError as exc:
        sources = setting_sources(overrides)

        def shown(err: dict) -> str:
            """The value, but never a secret's (it would go to the console and the logs)."""
            return "'***'" if str(err["loc"][0]).lower() in SECRETS else repr(err.get("input"))

        def where(loc: tuple) -> str:
            source = sources.get(str(loc[0]).lower(), "default") if loc else "default"
            return "" if source in ("flag", "environment", "default") else f" (in {source})"

        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}={shown(err)}{where(err['loc'])}: {err['msg']}"
            if err["loc"] else err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
