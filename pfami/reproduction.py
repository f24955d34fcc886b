"""The reproduction verdict: a run's metrics against the committed reference results.

The reference (``results/reference_metrics.json``, tracked by git) holds, per experiment, the
settings it was made with and every attack's headline figures. The run never writes it: it is
written only on purpose (``make reference``), so the verdict never compares a run with a file the
run has just overwritten, in a fresh clone, under ``dvc exp run`` or anywhere else.

Each figure is *identical* (the same float), *within tolerance*, or *different*. The tolerances are
one record's worth of each figure, because a last-bit difference in the models' outputs (another
CPU's kernels) can only reorder records whose scores are all but tied:

- TPR at a fixed FPR: one member, 1 / members;
- the FPR of the shadow-fitted threshold: one non-member, 1 / non-members;
- ASR: one target record, 1 / (members + non-members); the shadow ASR: one shadow record;
- AUC: 0.001, forty swapped member / non-member pairs out of 200 x 200 (a record that moves one place
  in the ranking changes the AUC by 1 / (members x non-members), 2.5e-5 at the default); the
  differences another CPU left in the metric attacks were below 1e-4.

The reference names the CPU it was made on and the vector instructions the kernels (torch's,
NumPy's) used there (``made.machine``, ``made.kernels``): one CPU name comes with AVX2 on one host
and AVX-512 on another, and the kernels' float sums differ between the two. On an AVX-512 host,
the kernels lowered to AVX2 (``LOWERED_KERNELS``, `make reproduce CPU_KERNELS=avx2`) gave results
byte-identical to an AVX2 host's.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from datetime import date

# The figures compared, as metrics.json names them.
FIGURES = ("auc", "asr", "tpr_at_0.01_fpr", "tpr_at_0.001_fpr", "threshold_fpr", "shadow_asr")
AUC_TOLERANCE = 0.001
# Sections of an experiment that do not change its metrics: the ablations, the sample grids.
IGNORED_SECTIONS = ("ablations", "sampling")
IDENTICAL, WITHIN, DIFFERENT = "identical", "within tolerance", "different"
# An attack that trains the authors' ResNet differs beyond tolerance on another CPU family (README:
# Across CPUs): there, and only there, its difference is said apart and does not decide the verdict.
MOVES_WITH_THE_CPU = "different: moves with the CPU"
# The vector instructions the CPU kernels can use, lowest first.
KERNEL_LEVELS = ("DEFAULT", "AVX2", "AVX512")
# The variables that cap them, one per kernel library (torch's: ATen's own, oneDNN's convolutions,
# MKL's BLAS; NumPy's, which lists the features it must not use), each as it lowers that library to
# AVX2; the Makefile's CPU_KERNELS=avx2 exports the same.
NUMPY_DISABLED = "NPY_DISABLE_CPU_FEATURES"
LOWERED_KERNELS = {"AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                            "MKL_ENABLE_INSTRUCTIONS": "AVX2", NUMPY_DISABLED: "X86_V4 AVX512_ICL AVX512_SPR"}}


def compared_settings(experiment: dict) -> dict:
    """The settings of an experiment that its metrics depend on."""
    return {key: value for key, value in experiment.items() if key not in IGNORED_SECTIONS}


def tolerances(records: dict) -> dict[str, float]:
    """One record's worth of each figure (see the module docstring); ``records``: metrics.json's."""
    members, non_members = records["target_members"], records["target_non_members"]
    shadow = records["shadow_members"] + records["shadow_non_members"]
    return {"auc": AUC_TOLERANCE, "asr": 1 / (members + non_members), "tpr_at_0.01_fpr": 1 / members,
            "tpr_at_0.001_fpr": 1 / members, "threshold_fpr": 1 / non_members, "shadow_asr": 1 / shadow}


def reference_entry(metrics: dict, settings: dict) -> dict:
    """What the reference keeps of one experiment's metrics.json."""
    return {"settings": compared_settings(settings), "records": metrics["records"],
            "attacks": {attack: {figure: result[figure] for figure in FIGURES}
                        for attack, result in metrics["attacks"].items()}}


def reference_document(metrics_by_experiment: dict[str, dict], settings_by_experiment: dict[str, dict],
                       machine: str | None = None, kernels: str | None = None) -> dict:
    return {"made": {"date": date.today().isoformat(), "machine": machine or cpu_name(),
                     "kernels": kernels or cpu_kernels()},
            "experiments": {name: reference_entry(metrics, settings_by_experiment[name])
                            for name, metrics in metrics_by_experiment.items()}}


def _cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _level(variable: str, value: str, widest: str) -> str:
    """The level (one of ``KERNEL_LEVELS``) a kernel variable leaves its library at, on a CPU whose
    widest is ``widest``."""
    value = value.upper()
    if variable == NUMPY_DISABLED:  # the features NumPy must not use: AVX-512's group (or its base) lowers it
        capped = "AVX2" if {"X86_V4", "AVX512F"} & set(value.split()) else widest
    elif value in ("", "ALL"):
        capped = widest
    else:
        capped = "AVX512" if value.startswith("AVX512") else "AVX2" if value.startswith("AVX2") else "DEFAULT"
    return min(widest, capped, key=KERNEL_LEVELS.index)


def cpu_kernels(environment: dict | None = None, flags: str | None = None) -> str:
    """The vector instructions torch's and NumPy's CPU kernels use here: the CPU's widest,
    lowered by any of the variables of ``LOWERED_KERNELS``; where the variables leave the libraries
    at different levels, each library's. ``platform.machine()`` off x86."""
    environment = os.environ if environment is None else environment
    flags = set((_cpuinfo("flags") if flags is None else flags or "").split())
    if not flags & {"avx2", "sse2"}:
        return platform.machine()
    widest = ("AVX512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
              else "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT")
    levels = {variable: _level(variable, environment.get(variable, ""), widest)
              for variable in LOWERED_KERNELS["AVX2"]}
    if len(set(levels.values())) == 1:
        return next(iter(levels.values()))
    return ", ".join(f"{variable} {level}" for variable, level in levels.items())


def machine_label(made: dict) -> str:
    """``made``'s CPU and kernels, as the verdict names them; a reference older than ``made.kernels``: its CPU."""
    return f"{made['machine']} ({made['kernels']} kernels)" if made.get("kernels") else made.get("machine", "")


def lowering_hint(reference_kernels: str | None, kernels: str) -> str:
    """How to run with the reference's kernels here, where this machine's are wider and the way is known; or ''."""
    lowered = LOWERED_KERNELS.get(reference_kernels or "")
    if not lowered or kernels not in KERNEL_LEVELS:
        return ""
    if KERNEL_LEVELS.index(kernels) <= KERNEL_LEVELS.index(reference_kernels):
        return ""
    variables = " ".join(f"{variable}={shlex.quote(value)}" for variable, value in lowered.items())
    return (f" For results byte-identical to the reference here, run with {reference_kernels} kernels: "
            f"`make reproduce CPU_KERNELS={reference_kernels.lower()}` (or {variables}).")


def changed_keys(reference: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two settings sections."""
    if not isinstance(reference, dict) or not isinstance(current, dict):
        return [prefix.rstrip(".")] if reference != current else []
    keys = []
    for key in sorted(set(reference) | set(current), key=str):
        keys += changed_keys(reference.get(key), current.get(key), f"{prefix}{key}.")
    return keys


def compare_attack(reference: dict, current: dict, tolerance: dict[str, float]) -> dict:
    """The status of one attack (its worst figure's) and the largest difference, relative to its tolerance."""
    statuses, worst = [], None
    for figure in FIGURES:
        difference = current[figure] - reference[figure]
        if difference == 0:
            continue
        # The relative slack absorbs the rounding of 1 / n itself.
        statuses.append(WITHIN if abs(difference) <= tolerance[figure] * (1 + 1e-9) else DIFFERENT)
        ratio = abs(difference) / tolerance[figure]
        if worst is None or ratio > worst["ratio"]:
            worst = {"figure": figure, "reference": reference[figure], "current": current[figure],
                     "tolerance": tolerance[figure], "ratio": ratio}
    status = DIFFERENT if DIFFERENT in statuses else WITHIN if statuses else IDENTICAL
    return {"status": status, "largest": worst}


def verdict(metrics_by_experiment: dict[str, dict], settings_by_experiment: dict[str, dict], reference: dict | None,
            machine: str | None = None, kernels: str | None = None) -> dict:
    """Rows (experiment, attack, AUC now and in the reference, status, largest difference), the
    experiments whose settings differ from the reference's (with the keys), those without a
    reference, and whether the run reproduced the reference. ``machine``, ``kernels``: this run's CPU
    and its kernels' instructions (default: this machine's); on another CPU or other kernels than the
    reference's, a ResNet attack's difference is ``MOVES_WITH_THE_CPU``."""
    from pfami.attacks import uses_torch

    made = (reference or {}).get("made", {})
    this = {"machine": machine or cpu_name(), "kernels": kernels or cpu_kernels()}
    other_cpu = bool(made.get("machine")) and (
        made["machine"] != this["machine"] or made.get("kernels", this["kernels"]) != this["kernels"])
    experiments = (reference or {}).get("experiments", {})
    rows, changed, missing = [], {}, []
    for name, metrics in metrics_by_experiment.items():
        if name not in experiments:
            missing.append(name)
            continue
        entry = experiments[name]
        keys = changed_keys(entry["settings"], compared_settings(settings_by_experiment[name]))
        if keys:
            changed[name] = keys
        tolerance = tolerances(metrics["records"])
        for attack, result in metrics["attacks"].items():
            if attack not in entry["attacks"]:
                rows.append({"experiment": name, "attack": attack, "auc": result["auc"], "reference_auc": None,
                             "status": "no reference", "largest": None})
                continue
            comparison = compare_attack(entry["attacks"][attack], result, tolerance)
            settings = settings_by_experiment[name].get("attacks", {}).get(attack, {})
            if comparison["status"] == DIFFERENT and other_cpu and uses_torch(attack, settings):
                comparison["status"] = MOVES_WITH_THE_CPU
            rows.append({"experiment": name, "attack": attack, "auc": result["auc"],
                         "reference_auc": entry["attacks"][attack]["auc"], **comparison})
        for attack in entry["attacks"]:
            if attack not in metrics["attacks"]:
                rows.append({"experiment": name, "attack": attack, "auc": None,
                             "reference_auc": entry["attacks"][attack]["auc"], "status": "not run", "largest": None})
    reproduced = bool(rows) and not missing and not changed and all(
        row["status"] in (IDENTICAL, WITHIN, MOVES_WITH_THE_CPU) for row in rows)
    return {"rows": rows, "changed_settings": changed, "no_reference": missing, "reproduced": reproduced,
            "made": made, "this": this, "other_cpu": other_cpu}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def closing_line(result: dict) -> str:
    moved = [f"{row['experiment']} {row['attack']}" for row in result["rows"] if row["status"] == MOVES_WITH_THE_CPU]
    hint = lowering_hint(result["made"].get("kernels"), result["this"]["kernels"]) if result["other_cpu"] else ""
    if result["reproduced"] and moved:
        return (f"Verdict: REPRODUCED, but for the authors' ResNet: {', '.join(moved)} differ beyond tolerance, as it "
                f"does on another CPU (reference made on {machine_label(result['made'])}, this run on "
                f"{machine_label(result['this'])}; README: Across CPUs). Every figure of every other attack is "
                f"identical to the reference or within its tolerance.{hint}")
    if result["reproduced"]:
        return "Verdict: REPRODUCED. Every figure of every attack is identical to the reference or within its tolerance."
    reasons = []
    if result["no_reference"]:
        reasons.append(f"no reference for {', '.join(result['no_reference'])} (write one with `make reference`)")
    for name, keys in result["changed_settings"].items():
        shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
        reasons.append(f"{name} was run with other settings than the reference ({shown})")
    different = [f"{row['experiment']} {row['attack']}" for row in result["rows"]
                 if row["status"] not in (IDENTICAL, WITHIN)]
    if different:
        reasons.append(f"{len(different)} attack(s) differ beyond tolerance: {', '.join(different)}")
    return "Verdict: NOT REPRODUCED: " + "; ".join(reasons) + "." + hint


def verdict_markdown(result: dict, reference_path: str) -> str:
    made = result["made"]
    source = f"`{reference_path}`" + (f", made {made['date']} on {machine_label(made)}" if made else "")
    lines = ["# Reproduction check", "",
             f"This run's metrics against the committed reference ({source}). A figure is identical, within "
             "tolerance (one record's worth: 1/members for TPR, 1/non-members for the threshold's FPR, 1/records "
             f"for ASR, {AUC_TOLERANCE} for AUC; see `pfami/reproduction.py`), or different. Each attack shows its "
             "largest difference relative to its tolerance.", ""]
    if result["rows"]:
        lines += ["| Experiment | Attack | AUC | Reference AUC | Status | Largest difference |", "|---|---|---|---|---|---|"]
        for row in result["rows"]:
            largest = row["largest"]
            difference = "-" if largest is None else (
                f"{largest['figure']} {largest['current']:.4g} vs {largest['reference']:.4g} "
                f"(tolerance {largest['tolerance']:.3g})")
            lines.append(f"| {row['experiment']} | {row['attack']} | {_number(row['auc'])} | "
                         f"{_number(row['reference_auc'])} | {row['status']} | {difference} |")
        lines.append("")
    lines += [closing_line(result), ""]
    return "\n".join(lines)


def load_reference(path: str) -> dict | None:
    """The reference document, or None where there is none."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
