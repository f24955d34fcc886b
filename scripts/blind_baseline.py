"""Score the target's records with the blind baseline (pfami/blind_baseline.py): a classifier on the records
alone, cross-fitted on them, that never queries a model. Writes record id, role, is_member, score."""

import argparse

from pfami.blind_baseline import blind_baseline_scores
from pfami.cli import json_value, run
from pfami.data import open_split_data, records_of
from pfami.io import write_scores
from pfami.seeding import derived_seed


def main(args: argparse.Namespace) -> None:
    images, splits = open_split_data(args.data, args.splits_file)
    record_ids, records, is_member = records_of(images, splits, "target", args.attacked_per_part)
    scores = blind_baseline_scores(records, is_member, derived_seed(args.seed, "blind_baseline"))
    # The attacks' scores format (scripts/score_attack.py), with target rows only: nothing is fitted on shadow records.
    write_scores(args.output, {"target": {"record_ids": record_ids, "is_member": is_member, "scores": scores}})
    print(f"blind baseline: scored {len(scores)} target records ({int(is_member.sum())} members)")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--attacked-per-part", type=json_value, default=None,
                    help="members and hold-outs attacked per role (JSON; null: all)")
parser.add_argument("--seed", type=int, required=True, help="the experiment's seed (the fold draws derive from it)")
parser.add_argument("--output", required=True, help="scores CSV to write")

if __name__ == "__main__":
    run(main, parser)
