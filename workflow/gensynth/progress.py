"""tqdm that shows on a terminal and stays out of job logs unless asked."""

from __future__ import annotations

import os
import sys

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
