"""`renamer-ray up`: start the local stack, print where everything is, and stop all of it on Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

from renamer_ray.config import Settings
from renamer_ray.service.local.stack import LocalStack


def up(settings: Settings, *, workdir: Path, dashboard_port: int, embedded: bool = True,
       api_host: str = "127.0.0.1") -> int:
    """Start the stack, print its URLs, stop everything on Ctrl-C or SIGTERM, from the first moment
    (Serve keeps the driver alive)."""
    stack = LocalStack(settings, workdir=workdir, dashboard_port=dashboard_port, embedded=embedded,
                       api_host=api_host)
    stopping = False

    def interrupt(signum, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    def listen() -> None:
        """Our handlers for SIGTERM and SIGINT, whatever `up` inherited (a script's `up &` starts with
        SIGINT ignored) and after ray.init (which installs a SIGTERM handler that aborts)."""
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, interrupt)

    def joined_ray() -> None:
        listen()  # ray.init has just put its own SIGTERM handler in place of ours
        print("deploying: the API, the namer (loading its model) and the driver …", flush=True)

    listen()
    try:
        print("starting: embedded S3/SQS, Ray head, Serve, driver …", flush=True)
        stack.start(after_ray_init=joined_ray)
        for name, url in stack.urls().items():
            print(f"  {name:<16} {url}", flush=True)
        print("ready. Ctrl-C stops everything.", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)
    return 0
