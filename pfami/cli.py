"""Small helpers shared by the command-line entry points in ``scripts/``."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path


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
    finally:
        # The step's outputs are written. Exempt every object from the garbage collector's passes at
        # exit: tearing down torch's, diffusers' and scikit-learn's modules otherwise costs a job up to
        # 1.5 CPU-s (about a third of a tiny job's time), and a short job exits sooner.
        gc.freeze()


def failed_job_errors(snakemake_logs):
    """(rule, log file, its one-line message) of every job that failed in this run, read from
    Snakemake's own log files (``onerror``'s ``log``): the steps write their one-line ``error: ...`` to their log file, which the
    terminal would otherwise not show (its last line where a step crashed without one)."""
    failures, failed_rule = [], None
    logs = [snakemake_logs] if isinstance(snakemake_logs, (str, Path)) else snakemake_logs
    for line in (text for path in logs for text in Path(path).read_text(errors="replace").splitlines()):
        if line.startswith("Error in rule "):
            failed_rule = line.removeprefix("Error in rule ").rstrip(":")
        elif failed_rule and line.strip().startswith("log: "):
            paths = line.strip().removeprefix("log: ").split(" (check log")[0]
            for path in paths.split(", "):
                lines = Path(path).read_text(errors="replace").splitlines() if Path(path).exists() else []
                errors = [text for text in lines if text.startswith("error: ")]
                message = errors[-1] if errors else (lines[-1] if lines else "(the log is empty)")
                failures.append((failed_rule, path, message))
            failed_rule = None
    return failures
