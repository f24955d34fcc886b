# One job per experiment draws the sample grids of all its models: importing torch and diffusers
# costs more than sampling these small models.
rule sample_images:
    wildcard_constraints:
        experiment=WITH_REFERENCE_PATTERN,
    input:
        models=lambda w: [model_dir(w, role) for role in ROLES],
    output:
        target=report(
            "results/{experiment}/figures/samples_target.png", caption="../report/samples.rst", category="{experiment}"
        ),
        shadow=report(
            "results/{experiment}/figures/samples_shadow.png", caption="../report/samples.rst", category="{experiment}"
        ),
        reference=report(
            "results/{experiment}/figures/samples_reference.png",
            caption="../report/samples.rst",
            category="{experiment}",
        ),
    log:
        "results/{experiment}/logs/sample_images.log",
    benchmark:
        "results/{experiment}/benchmarks/sample_images.tsv"
    conda:
        SOFTWARE_ENV
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sampling=lambda w: as_json(experiment(w).get("sampling", {})),
        seed=lambda w: experiment(w)["seed"],
        device=config["device"],
    shell:
        "python scripts/sample_images.py --model-dirs {input.models} --sampling {params.sampling:q} "
        "--seed {params.seed} --experiment {wildcards.experiment} --device {params.device} --threads {threads} "
        "--outputs {output} > {log} 2>&1"


# An experiment with a crossed reference has two models.
use rule sample_images as sample_attacked_models with:
    wildcard_constraints:
        experiment=CROSSED_PATTERN,
    input:
        models=trained_model_dirs,
    output:
        target=report(
            "results/{experiment}/figures/samples_target.png", caption="../report/samples.rst", category="{experiment}"
        ),
        shadow=report(
            "results/{experiment}/figures/samples_shadow.png", caption="../report/samples.rst", category="{experiment}"
        ),
