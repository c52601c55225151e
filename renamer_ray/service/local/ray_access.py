"""Who may reach and read the local stack's Ray: its own token, ray.env for a shell, settings without secrets.

Ray's dashboard and state API show every job's and actor's runtime_env to anyone who may look, so
secrets reach the replicas through the head's environment only."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
from pathlib import Path

from renamer_ray.config import SECRETS, Settings
from renamer_ray.local_ray import LOOPBACK_RAY_ENV, ray_token_env, write_private

log = logging.getLogger("renamer_ray.stack")
# The caller's AWS variables, passed to the Ray head's processes when the stack uses their AWS.
PASSED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")
# Values never put in a runtime_env.
SECRET_ENV = {name.upper() for name in SECRETS} | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment variables that reproduce them, plus AWS credentials."""
    env = {name.upper(): str(value) for name, value in settings.model_dump().items() if value is not None}
    env.update({k: os.environ[k] for k in PASSED_ENV if k in os.environ})
    return env


def public_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without its secrets: what may go into a runtime_env (shown on Ray's dashboard)."""
    return {name: value for name, value in env.items() if name not in SECRET_ENV}


def use_own_ray_token(workdir: Path) -> Path:
    """Ray with its token authentication on, and this stack's own token (new at each start, in the
    work folder, readable by its owner only; never ~/.ray/auth_token), for this process and for
    every process the head starts. Returns the token file."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        log.warning("RAY_AUTH_MODE=%s is ignored: the local stack's Ray always requires its token",
                    os.environ["RAY_AUTH_MODE"])
    token_file = write_private(workdir / "ray-auth-token", secrets.token_hex(32))
    os.environ.pop("RAY_AUTH_TOKEN", None)  # would win over the file
    os.environ.update({**ray_token_env(token_file), **LOOPBACK_RAY_ENV})
    return token_file


def write_ray_env(workdir: Path, token_file: Path, address: str, dashboard: str) -> Path:
    """``<workdir>/ray.env``: what a shell needs to talk to the Ray at ``address`` (``source`` it, then
    `ray job submit`, `ray status`, a Python driver or `renamer-ray rename --namer-service`)."""
    env = {**ray_token_env(token_file.resolve()), **LOOPBACK_RAY_ENV, "RAY_ADDRESS": address,
           "RAY_API_SERVER_ADDRESS": dashboard}
    return write_private(workdir / "ray.env", "# the local stack's Ray, for this shell: source this file\n"
                         + "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in env.items()))
