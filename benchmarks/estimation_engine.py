"""Time the probability-estimation engine against a loop shaped like the authors' code.

    PYTHONPATH=. python benchmarks/estimation_engine.py [--threads 1] [--records 100] [--paper-records 2]

On the same untrained model and the same records (timing does not depend on the weights), runs
``diffusion_losses`` (all (1 + N) x M evaluations of a block of records in large forward passes)
and ``reference_loop_losses`` (one strength and one timestep at a time, 100 records per pass,
fresh independent noise), for the default 16 px U-Net of config/config.yaml and for the paper's
64 px U-Net. Reports evaluations per second, the ratio, the FLOPs of one network evaluation
(torch.utils.flop_counter), the FLOP/s achieved against this machine's measured fp32 matmul rate,
and training steps per second of the default model. Prints one JSON object (also written to
``--output``). A benchmark, not a test: timings on a shared machine are noisy, so repeat it.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from pfami.data import load_dataset
from pfami.likelihood import (compile_noise_predictor, diffusion_losses, reference_loop_losses,
                             unet_noise_predictor)
from pfami.models.ddpm import build_scheduler, build_unet, train_ddpm

PROJECT = Path(__file__).resolve().parents[1]

# The paper's 64 px U-Net (the authors' DDPM on CelebA/FFHQ at 64 px).
PAPER_MODEL = {"block_out_channels": [128, 128, 256, 256, 512, 512], "layers_per_block": 2,
               "attention_levels": [4]}


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """The machine's own fp32 peak as seen by torch: the best of ``repeats`` large matmuls."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    left @ right  # warm-up
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best


def flops_per_evaluation(unet, image_shape: tuple[int, ...], batch: int = 4) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(torch.zeros(batch, *image_shape), torch.zeros(batch, dtype=torch.long))
    return counter.get_total_flops() / batch


def timed(function) -> tuple[float, object]:
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def compare(name: str, unet, alphas, images: np.ndarray, estimation: dict, perturbation: dict, batch_size: int,
            peak: float, compile_model: bool) -> dict:
    unet.eval()
    eps_model = unet_noise_predictor(unet)
    timesteps, strengths = estimation["timesteps"], perturbation["strengths"]
    evaluations = len(images) * len(timesteps) * (len(strengths) + 1)
    flops = flops_per_evaluation(unet, images.shape[1:])
    record_ids = list(range(len(images)))
    engine_model = compile_noise_predictor(eps_model) if compile_model else eps_model
    if compile_model:
        compile_seconds, _ = timed(lambda: diffusion_losses(
            engine_model, alphas, images[:1], record_ids[:1], timesteps[:1], perturbation["mechanism"],
            strengths[:1], seed=0, batch_size=batch_size, show_progress=False, static_batch=True))
    # One warm-up pass of each so that one-off allocations do not count against either.
    diffusion_losses(eps_model, alphas, images[:1], record_ids[:1], timesteps[:1], perturbation["mechanism"],
                     strengths[:1], seed=0, show_progress=False)
    engine_seconds, _ = timed(lambda: diffusion_losses(
        engine_model, alphas, images, record_ids, timesteps, perturbation["mechanism"], strengths, seed=0,
        batch_size=batch_size, show_progress=False, static_batch=compile_model))
    loop_seconds, _ = timed(lambda: reference_loop_losses(
        eps_model, alphas, images, timesteps, perturbation["mechanism"], strengths,
        generator=torch.Generator().manual_seed(0)))
    row = {"model": name, "records": len(images), "evaluations": evaluations, "engine_batch_size": batch_size,
           "engine_compiled": compile_model, "compile_seconds": compile_seconds if compile_model else 0.0,
           "gflops_per_evaluation": flops / 1e9,
           "engine_seconds": engine_seconds, "loop_seconds": loop_seconds,
           "engine_evaluations_per_second": evaluations / engine_seconds,
           "loop_evaluations_per_second": evaluations / loop_seconds,
           "speed_ratio": loop_seconds / engine_seconds,
           "engine_fraction_of_matmul_peak": flops * evaluations / engine_seconds / peak,
           "loop_fraction_of_matmul_peak": flops * evaluations / loop_seconds / peak}
    print(json.dumps(row), flush=True)
    return row


def training_steps_per_second(images: np.ndarray, experiment: dict, steps: tuple[int, int] = (5, 25)) -> float:
    """From the difference of two short runs, so model building and saving cancel out."""
    durations = []
    with tempfile.TemporaryDirectory() as folder:
        for index, count in enumerate(steps):
            training = {**experiment["training"], "steps": count, "checkpoint_every": count + 1}
            seconds, _ = timed(lambda: train_ddpm(images, experiment["model"], training, 0, Path(folder) / f"m{index}",
                                                  Path(folder) / f"s{index}.pt", torch.device("cpu")))
            durations.append(seconds)
    return (steps[1] - steps[0]) / (durations[1] - durations[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the pipeline's jobs use 1)")
    parser.add_argument("--records", type=int, default=100, help="records for the default 16 px model")
    parser.add_argument("--paper-records", type=int, default=2, help="records for the paper's 64 px model (0: skip)")
    parser.add_argument("--paper-batch-size", type=int, default=220, help="engine batch size for the 64 px model")
    parser.add_argument("--batch-size", type=int, default=None, help="engine batch size for the 16 px model "
                        "(default: estimation.batch_size of config/config.yaml)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's model (compile time "
                        "reported apart; the authors' loop stays eager)")
    parser.add_argument("--skip-training", action="store_true", help="do not time training steps")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "estimation_engine.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    experiment = yaml.safe_load((PROJECT / "config" / "config.yaml").read_text())["experiments"]["digits_ddpm"]
    model, estimation, perturbation = experiment["model"], experiment["estimation"], experiment["perturbation"]
    alphas = build_scheduler(model["train_timesteps"], model["beta_start"], model["beta_end"]).alphas_cumprod
    digits = load_dataset(experiment["data"])
    peak = matmul_flops_per_second()
    print(json.dumps({"matmul_gflops_per_second": peak / 1e9}), flush=True)

    rows = []
    default_unet = build_unet(digits.shape[-1], digits.shape[1], model["block_out_channels"], model["layers_per_block"],
                              model["attention_levels"])
    rows.append(compare("default 16 px", default_unet, alphas, digits[: args.records], estimation, perturbation,
                        args.batch_size or estimation["batch_size"], peak, args.compile))
    if args.paper_records:
        paper_unet = build_unet(64, 3, **PAPER_MODEL)
        faces = np.random.default_rng(0).uniform(-1, 1, (args.paper_records, 3, 64, 64)).astype(np.float32)
        rows.append(compare("paper 64 px", paper_unet, alphas, faces, estimation, perturbation,
                            args.paper_batch_size, peak, args.compile))
    result = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                         f"torch {torch.__version__}",
              "matmul_gflops_per_second": peak / 1e9, "comparisons": rows,
              "default_training_steps_per_second": None if args.skip_training
              else training_steps_per_second(digits[:500], experiment)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
