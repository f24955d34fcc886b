rule make_figures:
    input:
        metrics="results/{experiment}/metrics.json",
        roc="results/{experiment}/roc",
        scores=lambda w: expand("results/{experiment}/scores/{attack}.csv", experiment=w.experiment, attack=attacks_of(w)),
        target="results/{experiment}/fluctuations/target.npz",
        models=trained_model_dirs,
    output:
        roc=report("results/{experiment}/figures/roc.png", caption="../report/roc.rst", category="{experiment}"),
        fluctuation=report(
            "results/{experiment}/figures/fluctuation.png", caption="../report/fluctuation.rst", category="{experiment}"
        ),
        distributions=report(
            "results/{experiment}/figures/score_distributions.png",
            caption="../report/score_distributions.rst",
            category="{experiment}",
        ),
        training=report(
            "results/{experiment}/figures/training_loss.png", caption="../report/training_loss.rst", category="{experiment}"
        ),
    params:
        scores_dir="results/{experiment}/scores",
        figures_dir="results/{experiment}/figures",
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/make_figures.log",
    shell:
        "python scripts/make_figures.py --experiment {wildcards.experiment} --metrics {input.metrics} "
        "--roc-dir {input.roc} --scores-dir {params.scores_dir} --target-features {input.target} "
        "--model-dirs {input.models} --figures-dir {params.figures_dir} > {log} 2>&1"


rule make_summary:
    input:
        expand("results/{experiment}/metrics.json", experiment=EXPERIMENTS),
    output:
        markdown=report("results/summary.md", caption="../report/summary.rst", category="Summary"),
        csv="results/summary.csv",
    params:
        descriptions=as_json({name: describe_experiment(config["experiments"][name]) for name in EXPERIMENTS}),
        sampling=as_json({name: config["experiments"][name].get("sampling", {}) for name in DIFFUSION_EXPERIMENTS}),
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/logs/make_summary.log",
    shell:
        "python scripts/make_summary.py --metrics {input} --descriptions {params.descriptions:q} "
        "--sampling {params.sampling:q} "
        "--markdown {output.markdown} --csv {output.csv} > {log} 2>&1"


# The audit's document: every experiment's table, blind-baseline sentence, ROC, most exposed records and
# training curves, and the run's config, in one self-contained HTML page (pfami/audit_document.py); its
# body is the first page of `snakemake --report` (workflow/report/workflow.rst).
rule audit_document:
    input:
        metrics=expand("results/{experiment}/metrics.json", experiment=EXPERIMENTS),
        figures=[AUDIT_FIGURES[name][figure] for name in EXPERIMENTS for figure in AUDIT_FIGURES[name]],
    output:
        page=report(AUDIT_DOCUMENT, caption="../report/audit.rst", category="Audit document"),
        body=AUDIT_DOCUMENT_BODY,
    params:
        figures=as_json(AUDIT_FIGURES),
        descriptions=as_json({name: describe_experiment(config["experiments"][name]) for name in EXPERIMENTS}),
        sampling=as_json({name: config["experiments"][name].get("sampling", {}) for name in DIFFUSION_EXPERIMENTS}),
        config=as_json(config),
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/logs/audit_document.log",
    shell:
        "python scripts/make_audit_document.py --metrics {input.metrics} --figures {params.figures:q} "
        "--descriptions {params.descriptions:q} --sampling {params.sampling:q} --config {params.config:q} "
        "--page {output.page} --body {output.body} > {log} 2>&1"


# The run's metrics against the committed reference results (pfami/reproduction.py): it never
# compares with a file this run writes. A local rule, so that on SLURM too it runs where Snakemake was
# started, and the verdict is printed there at the end of the run (onsuccess, in the Snakefile).
rule verify_reproduction:
    input:
        metrics=expand("results/{experiment}/metrics.json", experiment=EXPERIMENTS),
        reference=[REFERENCE_RESULTS] if os.path.exists(REFERENCE_RESULTS) else [],
    output:
        VERDICT,
    params:
        settings=as_json({name: config["experiments"][name] for name in EXPERIMENTS}),
        # The path even where there is no such file yet (the verdict then says so).
        reference=lambda w: REFERENCE_RESULTS,
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/logs/verify_reproduction.log",
    shell:
        "python scripts/verify_reproduction.py --metrics {input.metrics} --settings {params.settings:q} "
        "--reference {params.reference:q} --output {output} > {log} 2>&1"
