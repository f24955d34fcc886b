# PFAMI reproduction pipeline: split -> train -> estimate -> fluctuate -> attack -> evaluate -> report.
# Run `snakemake --cores all`; the config is config/config.yaml (see config/README.md).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# The first page of `snakemake --report`: the audit's document (rule audit_document).
report: "workflow/report/workflow.rst"


# PATH is extended with the running interpreter's folder (workflow/rules/common.smk).
envvars:
    "PATH",


include: "workflow/rules/common.smk"
wildcard_constraints:
    experiment=EXPERIMENT_PATTERN,
    role="target|shadow|reference",
    model="target|shadow|reference",
    records="target|shadow",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/versioning.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/privacy.smk"


localrules:
    verify_reproduction,


# The reproduction verdict, as the last thing on the terminal, when this run made it (a DVC stage or a
# run of other targets does not print an old one).
onsuccess:
    if os.path.exists(VERDICT) and os.path.getmtime(VERDICT) >= STARTED:
        print(f"\n{Path(VERDICT).read_text()}(also in {VERDICT})")


# A failed step's one-line message sits in its log file; show it where the user is looking.
onerror:
    for rule_name, log_file, message in failed_job_errors(log):
        print(f"{rule_name} failed ({log_file}): {message}", file=sys.stderr)


rule all:
    input:
        "results/summary.md",
        "results/summary.csv",
        AUDIT_DOCUMENT,
        VERDICT,
        expand("results/{experiment}/figures/{figure}.png", experiment=EXPERIMENTS, figure=FIGURES),
        expand("results/{experiment}/training_loss.csv", experiment=EXPERIMENTS),
        expand("results/{experiment}/figures/exposed_records.png", experiment=EXPERIMENTS),
        [f"results/{name}/figures/samples_{role}.png" for name in EXPERIMENTS for role in trained_roles(config["experiments"][name])],
    default_target: True
