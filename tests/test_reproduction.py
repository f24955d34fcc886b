import copy
import json
import subprocess
import sys

import pytest

from pfami.reproduction import (AUC_TOLERANCE, DIFFERENT, IDENTICAL, LOWERED_KERNELS, MOVES_WITH_THE_CPU,
                                NUMPY_DISABLED, WITHIN, closing_line, cpu_kernels, reference_document, tolerances,
                                verdict, verdict_markdown)
from tests.conftest import PROJECT

PROJECT_SCRIPT = "scripts/verify_reproduction.py"


def _metrics(experiment="exp", **auc_by_attack):
    records = {"target_members": 200, "target_non_members": 200, "shadow_members": 200, "shadow_non_members": 200}
    attacks = {attack: {"auc": auc, "asr": 0.7, "tpr_at_0.01_fpr": 0.1, "tpr_at_0.001_fpr": 0.05,
                        "threshold_fpr": 0.2, "shadow_asr": 0.75, "threshold": 1.5, "ci95": {}}
               for attack, auc in auc_by_attack.items()}
    return {"experiment": experiment, "records": records, "attacks": attacks}


SETTINGS = {"exp": {"seed": 1, "training": {"steps": 960}, "ablations": {"classifier_seeds": 5}}}


# This run's machine in the tests: the reference's, whatever the host running them.
HERE = {"machine": "test CPU", "kernels": "AVX2"}


def _reference(metrics):
    return reference_document({metrics["experiment"]: metrics}, SETTINGS, **HERE)


def test_tolerances_are_one_record_of_each_figure():
    records = {"target_members": 100, "target_non_members": 400, "shadow_members": 50, "shadow_non_members": 50}
    assert tolerances(records) == {"auc": AUC_TOLERANCE, "asr": 1 / 500, "tpr_at_0.01_fpr": 1 / 100,
                                   "tpr_at_0.001_fpr": 1 / 100, "threshold_fpr": 1 / 400, "shadow_asr": 1 / 100}


def test_identical_within_tolerance_and_different_are_told_apart():
    reference = _reference(_metrics(loss=0.765, pfami_met=0.874, pfami_nns=0.88))
    run = _metrics(loss=0.765, pfami_met=0.874 + 0.0004, pfami_nns=0.88)
    run["attacks"]["pfami_nns"]["threshold_fpr"] = 0.2 + 3 / 200  # three non-members more above the threshold
    result = verdict({"exp": run}, SETTINGS, reference, **HERE)
    status = {row["attack"]: row["status"] for row in result["rows"]}
    assert status == {"loss": IDENTICAL, "pfami_met": WITHIN, "pfami_nns": DIFFERENT}
    largest = next(row["largest"] for row in result["rows"] if row["attack"] == "pfami_nns")
    assert largest["figure"] == "threshold_fpr" and largest["tolerance"] == pytest.approx(1 / 200)
    assert not result["reproduced"]
    assert closing_line(result) == ("Verdict: NOT REPRODUCED: 1 attack(s) differ beyond tolerance: exp pfami_nns.")


def test_one_record_of_difference_is_within_tolerance_and_the_run_is_reproduced():
    reference = _reference(_metrics(loss=0.765))
    run = _metrics(loss=0.765)
    run["attacks"]["loss"]["tpr_at_0.01_fpr"] += 1 / 200
    run["attacks"]["loss"]["asr"] -= 1 / 400
    result = verdict({"exp": run}, SETTINGS, reference, **HERE)
    assert [row["status"] for row in result["rows"]] == [WITHIN]
    assert result["reproduced"]
    assert closing_line(result).startswith("Verdict: REPRODUCED.")


def test_the_authors_resnet_may_differ_on_another_cpu_only_and_is_named():
    reference = _reference(_metrics(loss=0.765, pfami_nns=0.85, pfami_nns_resnet=0.783))
    run = _metrics(loss=0.765, pfami_nns=0.85, pfami_nns_resnet=0.810)
    elsewhere = verdict({"exp": run}, SETTINGS, reference, machine="another CPU", kernels="AVX2")
    assert {row["attack"]: row["status"] for row in elsewhere["rows"]}["pfami_nns_resnet"] == MOVES_WITH_THE_CPU
    assert elsewhere["reproduced"]
    assert closing_line(elsewhere).startswith("Verdict: REPRODUCED, but for the authors' ResNet: exp pfami_nns_resnet "
                                              "differ beyond tolerance")
    assert ("reference made on test CPU (AVX2 kernels), this run on another CPU (AVX2 kernels)"
            in closing_line(elsewhere))
    # On the reference's own CPU the same difference is a difference.
    same_cpu = verdict({"exp": run}, SETTINGS, reference, **HERE)
    assert {row["attack"]: row["status"] for row in same_cpu["rows"]}["pfami_nns_resnet"] == DIFFERENT
    assert not same_cpu["reproduced"]
    # Elsewhere, any other attack that differs still decides the verdict: the default SVM holds still.
    run["attacks"]["pfami_nns"]["auc"] = 0.86
    assert not verdict({"exp": run}, SETTINGS, reference, machine="another CPU", kernels="AVX2")["reproduced"]


def test_the_same_cpu_name_with_wider_kernels_is_another_cpu_and_the_verdict_says_how_to_match_the_reference():
    # One CPU name, AVX2 on the reference's host and AVX-512 here: the ResNet row may move, and the
    # verdict names the kernels and the way to run with the reference's.
    reference = _reference(_metrics(loss=0.765, pfami_nns_resnet=0.783))
    run = _metrics(loss=0.765, pfami_nns_resnet=0.810)
    wider = verdict({"exp": run}, SETTINGS, reference, machine="test CPU", kernels="AVX512")
    assert wider["reproduced"]
    line = closing_line(wider)
    assert "reference made on test CPU (AVX2 kernels), this run on test CPU (AVX512 kernels)" in line
    assert line.endswith("run with AVX2 kernels: `make reproduce CPU_KERNELS=avx2` (or ATEN_CPU_CAPABILITY=avx2 "
                         "ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 NPY_DISABLE_CPU_FEATURES='X86_V4 "
                         "AVX512_ICL AVX512_SPR').")
    # Any other attack's difference still decides; the hint stays, since other kernels may be why.
    run["attacks"]["loss"]["auc"] = 0.70
    failed = closing_line(verdict({"exp": run}, SETTINGS, reference, machine="test CPU", kernels="AVX512"))
    assert failed.startswith("Verdict: NOT REPRODUCED: 2 attack(s) differ beyond tolerance: exp loss, "
                             "exp pfami_nns_resnet.")
    assert "CPU_KERNELS=avx2" in failed
    # A reference made before the kernels were recorded is compared by its CPU name alone.
    del reference["made"]["kernels"]
    assert not verdict({"exp": _metrics(loss=0.765, pfami_nns_resnet=0.810)}, SETTINGS, reference,
                       machine="test CPU", kernels="AVX512")["reproduced"]


AVX512_FLAGS = "fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl"


def test_the_kernels_are_the_cpus_widest_lowered_by_the_variables():
    assert cpu_kernels({}, AVX512_FLAGS) == "AVX512"
    assert cpu_kernels({}, "fpu sse2 avx avx2 fma") == "AVX2"
    assert cpu_kernels({}, "fpu sse2 avx") == "DEFAULT"
    assert cpu_kernels(LOWERED_KERNELS["AVX2"], AVX512_FLAGS) == "AVX2"
    assert cpu_kernels({"ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx512"}, AVX512_FLAGS) == "AVX512"
    # A variable cannot raise the kernels above what the CPU has.
    assert cpu_kernels({"ATEN_CPU_CAPABILITY": "avx512"}, "fpu sse2 avx avx2 fma") == "AVX2"
    # Only some of the libraries lowered: each one's level, so that such a run matches neither host.
    assert cpu_kernels({"ATEN_CPU_CAPABILITY": "avx2"}, AVX512_FLAGS) == (
        "ATEN_CPU_CAPABILITY AVX2, ONEDNN_MAX_CPU_ISA AVX512, MKL_ENABLE_INSTRUCTIONS AVX512, "
        "NPY_DISABLE_CPU_FEATURES AVX512")
    # NumPy's variable lists what it must not use: AVX-512's group lowers it, other features do not.
    torch_lowered = {name: value for name, value in LOWERED_KERNELS["AVX2"].items() if name != NUMPY_DISABLED}
    assert cpu_kernels({**torch_lowered, NUMPY_DISABLED: "AVX512F"}, AVX512_FLAGS) == "AVX2"
    assert cpu_kernels({**torch_lowered, NUMPY_DISABLED: "AVX512_SPR"}, AVX512_FLAGS).endswith(
        "NPY_DISABLE_CPU_FEATURES AVX512")


def test_the_makefile_lowers_the_same_variables_as_the_verdict_names():
    makefile = (PROJECT / "Makefile").read_text().splitlines()
    exports = dict(line.removeprefix("export ").split(" := ") for line in makefile if line.startswith("export "))
    assert exports == LOWERED_KERNELS["AVX2"]


def test_other_settings_no_reference_and_missing_attacks_are_said_plainly():
    reference = _reference(_metrics(loss=0.765, pfami_met=0.874))
    changed = copy.deepcopy(SETTINGS)
    changed["exp"]["training"]["steps"] = 100
    changed["exp"]["ablations"]["classifier_seeds"] = 3  # ablations do not change the metrics: not reported
    result = verdict({"exp": _metrics(loss=0.765, pia=0.4)}, changed, reference, **HERE)
    assert result["changed_settings"] == {"exp": ["training.steps"]}
    assert {row["attack"]: row["status"] for row in result["rows"]} == {"loss": IDENTICAL, "pia": "no reference",
                                                                         "pfami_met": "not run"}
    assert "exp was run with other settings than the reference (training.steps)" in closing_line(result)
    assert not result["reproduced"]
    nothing = verdict({"exp": _metrics(loss=0.765)}, SETTINGS, None, **HERE)
    assert nothing["no_reference"] == ["exp"] and not nothing["reproduced"]
    assert "no reference for exp" in closing_line(nothing)
    text = verdict_markdown(result, "results/reference_metrics.json")
    assert "made " in text and "test CPU" in text and text.rstrip().endswith(".")


def test_the_script_writes_the_reference_then_compares_with_it(tmp_path):
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(json.dumps(_metrics(loss=0.765)))
    reference, output = tmp_path / "reference.json", tmp_path / "reproduction.md"
    common = [sys.executable, PROJECT_SCRIPT, "--metrics", str(metrics_file), "--settings", json.dumps(SETTINGS),
              "--reference", str(reference)]
    subprocess.run([*common, "--write-reference"], check=True, capture_output=True)
    printed = subprocess.run([*common, "--output", str(output)], check=True, capture_output=True, text=True).stdout
    assert printed.strip() == output.read_text().strip()
    assert "| exp | loss | 0.7650 | 0.7650 | identical | - |" in printed
    assert printed.strip().splitlines()[-1].startswith("Verdict: REPRODUCED.")
