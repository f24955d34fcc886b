# The privacy study (`snakemake --cores all privacy`, config section `privacy`, pfami/privacy_study.py):
# its experiments privacy/{base}/eps_* go through the main run's rules; this collects them.


rule privacy_study:
    wildcard_constraints:
        base="[A-Za-z0-9][A-Za-z0-9_.-]*",
    input:
        metrics=study_files("results/{experiment}/metrics.json"),
        models=study_files("results/{experiment}/models/target"),
        samples=study_files("results/{experiment}/figures/samples_target.png"),
    output:
        csv="results/privacy/{base}/privacy.csv",
        markdown="results/privacy/{base}/privacy.md",
        figure=report("results/privacy/{base}/privacy.png", caption="../report/privacy.rst", category="privacy"),
        samples=report("results/privacy/{base}/samples.png", caption="../report/privacy.rst", category="privacy"),
    params:
        labels=study_labels,
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure is a violated bound or bad input, which a retry cannot fix.
    retries: 0
    log:
        "results/privacy/{base}/logs/privacy_study.log",
    shell:
        "python scripts/privacy_study.py --base {wildcards.base} --labels {params.labels} --metrics {input.metrics} "
        "--models {input.models} --samples {input.samples} --csv {output.csv} --markdown {output.markdown} "
        "--figure {output.figure} --samples-figure {output.samples} > {log} 2>&1"


rule privacy:
    input:
        expand("results/privacy/{base}/privacy.csv", base=PRIVACY_BASES),
        expand("results/privacy/{base}/privacy.png", base=PRIVACY_BASES),
