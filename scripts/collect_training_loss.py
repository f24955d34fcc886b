"""Write an experiment's training loss curves as one small CSV (step, one column per model) for `dvc plots`."""

import argparse
from pathlib import Path

from pfami.cli import run
from pfami.io import atomic_write_text
from pfami.models.training import read_loss_curve
from pfami.versioning import loss_curves_csv


def main(args: argparse.Namespace) -> None:
    curves = {Path(folder).name: read_loss_curve(folder) for folder in args.model_dirs}
    atomic_write_text(args.output, loss_curves_csv(curves))


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--model-dirs", nargs="+", required=True, help="model folders holding loss_curve.csv")
parser.add_argument("--output", required=True)

if __name__ == "__main__":
    run(main, parser)
