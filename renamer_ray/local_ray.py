"""A Ray that this machine keeps to itself: what `renamer-ray rename` (its own local Ray) and
`renamer-ray up` (the local stack's head) start.

Ray's servers run code for whoever reaches them, so such a Ray listens on 127.0.0.1 only and asks for
a token that only its owner can read:

- **Loopback.** ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is Ray's one-machine mode (the default on
  macOS and Windows): node IP 127.0.0.1 and every Ray server on loopback. ``--node-ip-address=127.0.0.1``
  alone is not enough on Linux: Ray 2.60 replaces it with the machine's address and binds its GCS
  and raylet to every interface. Ray reads the switch when it is imported, so it is set before that.
- **Token.** Ray 2.60 turns token authentication on for a new local Ray, but writes the token to
  ``~/.ray/auth_token`` readable by every local user; the token here is this Ray's own, in a file of
  mode 600.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

LOOPBACK_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def write_private(path: Path, text: str) -> Path:
    """Write a file that only its owner can read: mode 0600 from the moment it exists (and over an
    older file of another mode); a symbolic link planted at the path is refused, not followed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    return path


def ray_token_env(token_file: Path) -> dict[str, str]:
    """What a process needs to talk to a Ray with this token (Serve, `ray job submit`, a driver)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}


def keep_local_ray_private() -> None:
    """For a command about to start its own local Ray (no RAY_ADDRESS), before Ray is imported:
    loopback only, and, unless the user set Ray's authentication variables, token authentication
    with a token of this process's own (a private temporary folder, removed when it exits)."""
    if os.environ.get("RAY_ADDRESS"):
        return
    for name, value in LOOPBACK_RAY_ENV.items():
        os.environ.setdefault(name, value)
    if any(name in os.environ for name in AUTH_VARIABLES):
        return
    folder = Path(tempfile.mkdtemp(prefix="renamer-ray-"))  # mode 700
    os.environ.update(ray_token_env(write_private(folder / "ray-auth-token", secrets.token_hex(32))))
    atexit.register(shutil.rmtree, folder, True)  # after Ray's own shutdown (atexit runs last in, first out)
