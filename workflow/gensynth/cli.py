"""What every script's ``main`` shares: logging set-up and one-line errors."""

from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence

from .errors import GensynthError

EXIT_BAD_INPUT = 2


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a GensynthError becomes ``error: <message>`` on stderr and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(main(argv) or 0)
    except GensynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
