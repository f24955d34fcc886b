"""The most exposed records of an experiment: a CSV of every target record's score and rank under every
attack (and the blind baseline), and a figure of the members the best attack ranks highest beside the
non-members it ranks highest. "Best": highest AUC on the shadow records; the ranking is reported, not
used to choose anything."""

import argparse
from pathlib import Path

from pfami.attacks import DISPLAY_NAMES
from pfami.cli import json_value, run
from pfami.data import open_split_data, to_model_range
from pfami.exposure import BLIND_BASELINE, best_attack_on_shadow, most_exposed, ranks, score_table, score_table_csv
from pfami.exposure_plots import plot_exposed_records
from pfami.io import atomic_write_text, read_scores


def main(args: argparse.Namespace) -> None:
    scores = {Path(path).stem: read_scores(path) for path in args.scores}
    best, shadow_auc = best_attack_on_shadow({attack: rows["shadow"] for attack, rows in scores.items()})
    target_rows = {attack: rows["target"] for attack, rows in scores.items()}
    if args.blind_baseline_scores:
        target_rows[BLIND_BASELINE] = read_scores(args.blind_baseline_scores)["target"]
    record_ids, is_member, table = score_table(target_rows)
    atomic_write_text(args.table, score_table_csv(record_ids, is_member, table, order_by=best))

    images, _ = open_split_data(args.data, args.splits_file)
    rank = ranks(table[best])
    members, non_members = most_exposed(table[best], is_member, args.count)
    name = DISPLAY_NAMES.get(best, best)
    panels = [(f"Members {name} ranks highest", members), (f"Non-members {name} ranks highest (false alarms)", non_members)]
    plot_exposed_records(
        [(heading, to_model_range(images, record_ids[chosen]),
          [f"rank {rank[index]} of {len(rank)}\nscore {table[best][index]:.3g} · #{record_ids[index]}"
           for index in chosen]) for heading, chosen in panels],
        f"{args.experiment}: the target records {name} finds most member-like", args.figure,
        note=(f"{name}: the attack of highest AUC on the shadow model's records ({shadow_auc:.3f}); ranks among all "
              f"{len(rank)} target records (1 = most member-like); #: record id.\nEvery record's score and rank under "
              f"every attack and the blind baseline: {args.table}"))
    print(f"{args.experiment}: best attack on the shadow records {best} (AUC {shadow_auc:.3f}); "
          f"{len(members)} members and {len(non_members)} non-members shown")


parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--experiment", required=True)
parser.add_argument("--scores", nargs="+", required=True, help="scores CSVs, one per attack, named {attack}.csv")
parser.add_argument("--blind-baseline-scores", help="the blind baseline's scores CSV (a column of the table)")
parser.add_argument("--data", type=json_value, required=True, help="the experiment's data section (JSON)")
parser.add_argument("--splits-file", required=True)
parser.add_argument("--count", type=int, default=8, help="members and non-members shown")
parser.add_argument("--figure", required=True, help="PNG to write")
parser.add_argument("--table", required=True, help="CSV to write")

if __name__ == "__main__":
    run(main, parser)
