"""The most exposed records (pfami/exposure.py, pfami/exposure_plots.py) on hand-made scores."""

import numpy as np
import pytest

from pfami.exposure import best_attack_on_shadow, most_exposed, ranks, score_table, score_table_csv
from pfami.exposure_plots import plot_exposed_records


def rows(record_ids, is_member, scores):
    return {"record_ids": np.array(record_ids), "is_member": np.array(is_member, bool), "scores": np.array(scores, float)}


def test_rank_one_is_the_highest_score_and_ties_share_a_rank():
    assert ranks([0.1, 0.9, 0.5, 0.9]).tolist() == [4, 1, 3, 1]


def test_the_best_attack_is_chosen_on_the_shadow_records_only():
    shadow = {"loss": rows([1, 2, 3, 4], [1, 1, 0, 0], [0.2, 0.1, 0.4, 0.3]),  # AUC 0
              "pfami_met": rows([1, 2, 3, 4], [1, 1, 0, 0], [0.9, 0.8, 0.1, 0.85]),  # AUC 0.75
              "pia": rows([1, 2, 3, 4], [1, 1, 0, 0], [0.9, 0.8, 0.85, 0.1])}  # AUC 0.75, after pfami_met
    assert best_attack_on_shadow(shadow) == ("pfami_met", 0.75)


def test_the_table_aligns_every_attack_on_the_records_and_refuses_others():
    target = {"pfami_met": rows([7, 3, 5], [1, 0, 1], [0.3, 0.9, 0.1]),
              "blind_baseline": rows([5, 7, 3], [1, 1, 0], [-1.0, 2.0, 0.5])}
    record_ids, is_member, table = score_table(target)
    assert record_ids.tolist() == [7, 3, 5] and table["blind_baseline"].tolist() == [2.0, 0.5, -1.0]
    csv = score_table_csv(record_ids, is_member, table, order_by="pfami_met").splitlines()
    assert csv[0] == "record_id,is_member,score_pfami_met,rank_pfami_met,score_blind_baseline,rank_blind_baseline"
    assert csv[1:] == ["3,0,0.9,1,0.5,2", "7,1,0.3,2,2,1", "5,1,0.1,3,-1,3"]
    members, non_members = most_exposed(table["pfami_met"], is_member, 5)
    assert members.tolist() == [0, 2] and non_members.tolist() == [1]
    with pytest.raises(ValueError, match="loss: scores other target records than pfami_met"):
        score_table({**target, "loss": rows([7, 3, 6], [1, 0, 1], [0, 0, 0])})
    with pytest.raises(ValueError, match="loss: its member labels differ"):
        score_table({**target, "loss": rows([7, 3, 5], [0, 1, 1], [0, 0, 0])})


def test_the_figure_is_drawn_for_grey_and_colour_records(tmp_path):
    for channels in (1, 3):
        images = np.random.default_rng(0).uniform(-1, 1, (5, channels, 8, 8))
        path = tmp_path / f"exposed_{channels}.png"
        plot_exposed_records([("Members", images, ["a"] * 5), ("Non-members", images[:2], ["b"] * 2)], "title", path,
                             note="a note")
        assert path.read_bytes()[:4] == b"\x89PNG"
