"""Small helpers shared by the command-line entry points in ``scripts/``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable


def json_value(text: str):
    """argparse type: a JSON value (config sections travel as JSON from the rules)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse arguments, run ``main``, and turn expected errors into one line and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = parser.parse_args()
    try:
        main(arguments)
    except (ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
