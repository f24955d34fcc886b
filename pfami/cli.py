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


# A step's garbage-collector thresholds. A tiny step's time is mostly importing torch, diffusers and
# scikit-learn, which makes about a million objects; with Python's default (a young collection every
# 700 allocations) the collector's passes over them cost a DDPM step about 0.7 CPU-s. The steps make
# little cyclic garbage, so collecting less often holds little memory back (README: Performance).
STEP_GC_THRESHOLDS = (50_000, 20, 20)


def run(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    """Parse arguments, run ``main``, and turn expected errors into one line and exit status 1."""
    gc.set_threshold(*STEP_GC_THRESHOLDS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = parser.parse_args()
    try:
        main(arguments)
    except (ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        # The step's outputs are written. Exempt every object from the collector's passes at exit:
        # tearing down torch's, diffusers' and scikit-learn's modules otherwise costs a step up to 1.5 CPU-s.
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
