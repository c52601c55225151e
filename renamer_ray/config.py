"""Settings from the environment (the seed's variables and defaults), validated at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# 15 tokens (the seed's value) cannot hold a 60-character name: Qwen2's BPE spends ~3-4
# characters per token on kebab-case text and as little as 1 on rare words. The namer's
# constrained decoding stops on its own at 60 characters or 10 words, and every allowed token
# carries at least one character, so 60 new tokens can always reach the limit and never cut a
# name short; generation ends at the model's end token, so the bound costs nothing in practice.
DEFAULT_MAX_NEW_TOKENS = 60


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


class Settings(BaseSettings):
    """Every knob, read from environment variables of the same name (upper-case)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True)

    aws_region: str = Field("us-east-1", min_length=1)
    aws_endpoint_url: str | None = Field(None, description="S3/SQS-compatible endpoint (moto, MinIO, LocalStack)")
    s3_in_bucket: str = "renamer-ray-input"
    s3_out_bucket: str = "renamer-ray-output"
    sqs_queue_url: str | None = None
    model_id: str = Field("Qwen/Qwen2-VL-2B-Instruct", min_length=1,
                          description="hub id, local path, or `toy-shapes` for the bundled test checkpoint")
    max_pixels: int = Field(786_432, ge=28 * 28 * 4, le=28 * 28 * 16384)
    max_new_tokens: int = Field(DEFAULT_MAX_NEW_TOKENS, ge=1, le=512)
    batch_size: int = Field(12, ge=1, le=1024)
    api_port: int = Field(80, ge=1, le=65535)
    model_device: Literal["auto", "cpu", "cuda"] = "auto"
    model_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    name_template: str = Field("{subject}", min_length=1)

    @field_validator("aws_endpoint_url", "sqs_queue_url")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


def load_settings(**overrides) -> Settings:
    """Settings from the environment plus explicit overrides; errors name the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
