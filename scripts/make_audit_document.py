"""Write the audit's document (pfami/audit_document.py): a self-contained HTML page of the run, and its
body alone, which `snakemake --report` shows on its first page."""

import argparse
import json
from pathlib import Path

import yaml

from pfami.audit_document import audit_body, audit_page
from pfami.cli import json_value, run
from pfami.io import atomic_write_text


def main(args: argparse.Namespace) -> None:
    metrics = {}
    for path in args.metrics:
        content = json.loads(Path(path).read_text())
        metrics[content["experiment"]] = content
    missing = sorted(set(metrics) - set(args.figures))
    if missing:
        raise ValueError(f"--figures: no figures for experiment(s) {', '.join(missing)}")
    body = audit_body(metrics, args.descriptions, args.figures, yaml.safe_dump(args.config, sort_keys=False),
                      args.sampling)
    atomic_write_text(args.body, body)
    atomic_write_text(args.page, audit_page(body))
    print(f"audit document of {len(metrics)} experiment(s) written to {args.page} (body: {args.body})")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json of each experiment")
parser.add_argument("--figures", type=json_value, required=True,
                    help="{experiment: {figure name: PNG path}} (JSON; names of pfami.audit_document.FIGURES)")
parser.add_argument("--descriptions", type=json_value, default={}, help="{experiment: one-line description}")
parser.add_argument("--sampling", type=json_value, default={},
                    help="{diffusion experiment: its sampling section}; their blocks say which samplers were varied")
parser.add_argument("--config", type=json_value, required=True, help="the run's config (JSON), shown at the end")
parser.add_argument("--page", required=True, help="the HTML page to write")
parser.add_argument("--body", required=True, help="its body alone, for the first page of `snakemake --report`")

if __name__ == "__main__":
    run(main, parser)
