"""Collect every experiment's metrics into results/summary.md and results/summary.csv."""

import argparse
import json
from pathlib import Path

from pfami.cli import json_value, run
from pfami.io import atomic_write_text
from pfami.report import summary_csv, summary_markdown


def main(args: argparse.Namespace) -> None:
    metrics = {}
    for path in args.metrics:
        content = json.loads(Path(path).read_text())
        metrics[content["experiment"]] = content
    atomic_write_text(args.markdown, summary_markdown(metrics, args.descriptions, args.sampling))
    atomic_write_text(args.csv, summary_csv(metrics))
    print(f"summary of {len(metrics)} experiment(s) written to {args.markdown} and {args.csv}")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json of each experiment")
parser.add_argument("--descriptions", type=json_value, default={}, help="{experiment: one-line description}")
parser.add_argument("--sampling", type=json_value, default={},
                    help="{diffusion experiment: its sampling section}; their blocks say which samplers were varied")
parser.add_argument("--markdown", required=True)
parser.add_argument("--csv", required=True)

if __name__ == "__main__":
    run(main, parser)
