"""The ``Settings``: every knob of the program, its default, its bounds and the checks between knobs."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SecretsSettingsSource, SettingsConfigDict

from renamer_ray.config.keys import NAMESPACE, key_bytes, key_namespaces, parse_secrets
from renamer_ray.config.sources import ConfigFilesSource, secrets_dir
from renamer_ray.naming import NamingStyle, StyleError

# Qwen2's BPE spends ~3-4 characters per token on kebab-case text and as little as 1 on rare words.
# The namer's constrained decoding stops on its own at 60 characters or 10 words, and every allowed
# token carries at least one character, so 60 new tokens can always reach the limit and never cut a
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


class Settings(BaseSettings):
    """Every knob, read from environment variables of the same name (upper-case)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        """Flags (keyword arguments) > environment > secrets folder > renamer-ray.toml files > defaults."""
        folder = secrets_dir()
        secrets = (SecretsSettingsSource(settings_cls, secrets_dir=folder),) if folder else ()
        return init_settings, env_settings, *secrets, ConfigFilesSource(settings_cls)

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
    default_namespace: str = Field("demo", pattern=NAMESPACE.pattern)
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
    event_silence_seconds: float = Field(45, ge=1, le=120, description=(
        "a job's event stream silent this long was dropped on the way: the page follows the job again; "
        "the stream sends a keep-alive after a third of it"))
    request_timeout_seconds: float = Field(660, ge=630, le=24 * 3600, description=(
        "Serve's HTTP request timeout: bounds uploads and ZIP downloads; above the 600 s event-stream lifetime"))
    url_expires_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    sqs_wait_seconds: int = Field(20, ge=0, le=20, description="long-poll wait per receive")
    visibility_timeout: int = Field(120, ge=5, le=12 * 3600, description="seconds a received job stays hidden")
    heartbeat_seconds: float = Field(40, gt=0, description="how often a running job's visibility is extended")
    max_receives: int = Field(3, ge=1, le=1000, description="SQS maxReceiveCount before the DLQ")
    max_jobs_per_run: int = Field(16, ge=1, le=1000, description="small waiting jobs taken into one pipeline run")
    max_running: int = Field(4, ge=1, le=256, description="pipeline runs the driver keeps going at once")
    small_job_files: int = Field(12, ge=0, le=1000, description=(
        "jobs of at most this many files may also run in one more slot, kept for them beyond MAX_RUNNING "
        "and run in the driver's lane (one process, no Ray Data tasks), so that they never wait behind "
        "large jobs (0: no such slot)"))
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
        if value and info.field_name == "webhook_secrets":
            parse_secrets(value)      # ValueError names the entry, never a secret
        elif value:
            key_bytes(value)
        return value

    # Which inference engine a run's model stage uses (docs/models.md, "Other inference engines").
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
        return key_namespaces(self.api_keys)

    @property
    def naming_style(self) -> NamingStyle:
        """The NAME_* settings as a ``NamingStyle`` (the default of every run and job)."""
        return NamingStyle(case=self.name_case, max_chars=self.name_max_chars, max_words=self.name_max_words,
                           language=self.name_language)

    @field_validator("name_language")
    @classmethod
    def _a_language_name(cls, value: str | None) -> str | None:
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
