"""Compare every experiment's metrics.json with the committed reference results and write the verdict.

With --write-reference, make the reference from the current metrics instead: on purpose, after a change
that is meant to change the results (`make reference`); commit the file it writes. With --config, the
experiments, their metrics files and the reference's path come from that config file."""

import argparse
import json
from pathlib import Path

import yaml

from pfami.cli import json_value, run
from pfami.io import atomic_write_text
from pfami.reproduction import load_reference, reference_document, verdict, verdict_markdown
from pfami.versioning import DEFAULT_REFERENCE_RESULTS


def from_config(args: argparse.Namespace) -> None:
    """Fill --settings, --metrics and --reference from --config where they are not given, with the
    schema's defaults filled in as the workflow fills them (the verdict compares those settings)."""
    from snakemake.utils import validate

    config = yaml.safe_load(Path(args.config).read_text())
    validate(config, args.schema)
    args.settings = args.settings or config["experiments"]
    args.metrics = args.metrics or [f"results/{name}/metrics.json" for name in config["experiments"]]
    args.reference = args.reference or config.get("reference_results", DEFAULT_REFERENCE_RESULTS)


def main(args: argparse.Namespace) -> None:
    if args.config:
        from_config(args)
    if not (args.metrics and args.settings and args.reference):
        raise ValueError("give --config, or --metrics, --settings and --reference")
    metrics = {}
    for path in args.metrics:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no metrics; run the workflow first (snakemake --cores all)")
        content = json.loads(Path(path).read_text())
        metrics[content["experiment"]] = content
    unknown = sorted(set(metrics) - set(args.settings))
    if unknown:
        raise ValueError(f"--settings: no settings for experiment(s) {', '.join(unknown)}")
    if args.write_reference:
        atomic_write_text(args.reference, json.dumps(reference_document(metrics, args.settings), indent=1) + "\n")
        print(f"reference results of {', '.join(metrics)} written to {args.reference}; commit it")
        return
    if args.output is None:
        raise ValueError("--output: name the verdict file to write")
    text = verdict_markdown(verdict(metrics, args.settings, load_reference(args.reference)), args.reference)
    atomic_write_text(args.output, text)
    print(text)


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--config", help="a config file: its experiments, their metrics.json and reference_results")
parser.add_argument("--schema", default="workflow/schemas/config.schema.yaml", help="with --config: its schema")
parser.add_argument("--metrics", nargs="+", help="metrics.json of each experiment")
parser.add_argument("--settings", type=json_value, help="{experiment: its config section} (JSON)")
parser.add_argument("--reference", help="the committed reference results (JSON)")
parser.add_argument("--output", help="the verdict to write (markdown)")
parser.add_argument("--write-reference", action="store_true", help="write --reference from the metrics instead")

if __name__ == "__main__":
    run(main, parser)
