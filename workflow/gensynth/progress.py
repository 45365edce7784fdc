"""tqdm that shows on a terminal and stays out of job logs unless asked; progress lines that reach job logs."""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm.auto import tqdm

PROGRESS_ENV = "GENSYNTH_PROGRESS"


def progress_enabled(show: bool | None = None) -> bool:
    """``show`` wins; else GENSYNTH_PROGRESS=1/0; else only when stderr is a terminal."""
    if show is not None:
        return show
    env = os.environ.get(PROGRESS_ENV)
    if env is not None:
        return env not in ("", "0", "false", "no")
    return sys.stderr.isatty()


def progress(iterable=None, *, desc: str, unit: str = "it", total: int | None = None, show: bool | None = None):
    return tqdm(iterable, desc=desc, unit=unit, total=total, disable=not progress_enabled(show), dynamic_ncols=True)


class ProgressLog:
    """A progress line at most every ``every_s`` seconds, and at the end, in the log (a job's log
    is no terminal, where tqdm stays silent): ``training: epoch 12/60, step 480, loss 0.0412,
    2.1 s/epoch, ETA 1m41s``."""

    def __init__(self, desc: str, total: int, unit: str = "it", every_s: float = 30.0, logger: logging.Logger | None = None):
        self.desc, self.total, self.unit, self.every_s = desc, total, unit, every_s
        self.logger = logger or logging.getLogger("gensynth.progress")
        self.started = self.last = time.monotonic()
        self.first_done: int | None = None

    def update(self, done: int, **values: float) -> None:
        now = time.monotonic()
        if self.first_done is None:
            self.first_done, self.started = done - 1, self.last  # a resumed run's rate counts only its own items
        if now - self.last < self.every_s and done < self.total:
            return
        self.last = now
        per_item = (now - self.started) / max(done - self.first_done, 1)
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        self.logger.info(
            "%s: %s %d/%d%s, %.3g s/%s, ETA %s",
            self.desc,
            self.unit,
            done,
            self.total,
            f", {shown}" if shown else "",
            per_item,
            self.unit,
            format_duration(per_item * (self.total - done)),
        )


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
