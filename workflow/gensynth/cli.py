"""What every script shares, torch-free: the device flags, logging set-up, one-line errors, and a quick exit.

Scripts import torch and the modules that use it inside ``main``, after parsing: ``--help`` and a bad flag
answer at once (tests/test_usage.py checks every script)."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .errors import GensynthError

EXIT_BAD_INPUT = 2
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--device``, the flags of every script that runs torch models (gensynth.device reads them)."""
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:N")


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a GensynthError becomes ``error: <message>`` on stderr and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(main(argv) or 0)
    except GensynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def exit_main(main: Callable[[Sequence[str] | None], int | None]) -> None:
    """A script's entry point: :func:`run_main` on the command line's arguments, then exit with its code.

    The interpreter's own teardown is skipped: with torch and diffusers loaded, clearing their modules
    costs 1.5-2 CPU-seconds per process, more than most small jobs compute. Everything a job writes is
    closed by then (atomic writes); the exit handlers, logging and the output streams are flushed first.
    An exception other than a GensynthError (a bug: its traceback) and ``--help`` exit the ordinary way.
    """
    code = run_main(main)
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
