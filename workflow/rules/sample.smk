rule sample_images:
    input:
        model="results/{experiment}/models/{role}",
    output:
        report(
            "results/{experiment}/figures/samples_{role}.png",
            caption="../report/samples.rst",
            category="{experiment}",
        ),
    conda:
        SOFTWARE_ENV
    log:
        "results/{experiment}/logs/sample_images/{role}.log",
    benchmark:
        "results/{experiment}/benchmarks/sample_images/{role}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        sampling=lambda w: json.dumps(experiment(w).get("sampling", {})),
        seed=lambda w: experiment(w)["seed"],
        title=lambda w: f"{w.experiment}: {w.role} model samples",
        device=config["device"],
    shell:
        "python scripts/sample_images.py --model-dir {input.model} --sampling {params.sampling:q} "
        "--seed {params.seed} --title {params.title:q} --device {params.device} --threads {threads} "
        "--output {output} > {log} 2>&1"
