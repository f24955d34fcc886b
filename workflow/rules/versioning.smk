# A small uncached copy of the training loss curves, so `dvc plots` can draw and diff them
# (the curves themselves live inside the DVC-cached model folders).


rule collect_training_loss:
    input:
        trained_model_dirs,
    output:
        "results/{experiment}/training_loss.csv",
    conda:
        SOFTWARE_ENV
    # Cheap and deterministic: a failure here is bad input or a bug, which a retry cannot fix.
    retries: 0
    log:
        "results/{experiment}/logs/collect_training_loss.log",
    shell:
        "python scripts/collect_training_loss.py --model-dirs {input} --output {output} > {log} 2>&1"
