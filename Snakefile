# PFAMI reproduction pipeline: split -> train -> estimate -> fluctuate -> attack -> evaluate -> report.
# Run `snakemake --cores all`; the config is config/config.yaml (see config/README.md).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablations.smk"


rule all:
    input:
        "results/summary.md",
        "results/summary.csv",
        expand("results/{experiment}/figures/{figure}.png", experiment=EXPERIMENTS, figure=FIGURES),
    default_target: True
