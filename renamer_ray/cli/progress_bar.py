"""One progress bar for a whole run, in the terminal: tqdm where the stream is a terminal with a
width; elsewhere (a pipe, a file, CI) a plain line every PLAIN_EVERY seconds, so logs stay readable."""

from __future__ import annotations

import shutil
import sys
import time

PLAIN_EVERY = 2.0


class ProgressBar:
    """``show(done, total, detail)`` as often as you like; ``close()`` at the end. ``total`` may grow
    while the run still lists its files (None: not known yet)."""

    def __init__(self, desc: str, stream=None, unit: str = "image"):
        self.stream, self.desc, self.unit = stream or sys.stdout, desc, unit
        self.started, self.printed, self.last = time.monotonic(), 0.0, None
        self.bar = None
        if self.stream.isatty() and shutil.get_terminal_size((0, 0)).columns > 0:  # a terminal that has a width
            from tqdm import tqdm

            self.bar = tqdm(total=None, unit=unit, desc=desc, file=self.stream, dynamic_ncols=True)

    def show(self, done: int, total: int | None, detail: str = "") -> None:
        if self.bar is not None:
            if total is not None and total != self.bar.total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(detail)
            return
        now = time.monotonic()
        if (done, total, detail) != self.last and (now - self.printed >= PLAIN_EVERY or done == total):
            elapsed = now - self.started
            rate = done / elapsed if elapsed > 0 else 0.0
            left = f", about {(total - done) / rate:.0f} s left" if rate and total and done < total else ""
            of = f"/{total}" if total is not None else ""
            print(f"{done}{of} {self.unit}s {self.desc}{f' ({detail})' if detail else ''}, {rate:.1f} {self.unit}s/s{left}",
                  file=self.stream, flush=True)
            self.printed, self.last = now, (done, total, detail)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
