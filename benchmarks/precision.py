"""What `precision: auto` measures: fp32 against bf16 autocast, contiguous against channels_last,
for the shipped spaces' first configs, at 1 and 2 threads, side by side in one process, and what
fer.speed chooses from it. Run it as is, and under ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
to see a CPU that emulates bf16 on one with native bf16 (AMX, AVX512-BF16).

    python -m benchmarks.precision [--threads 1 2] [--steps 3]
"""
from __future__ import annotations

import os
import time

import torch

from benchmarks.common import cli, header, parser
from fer.config import resolve_run
from fer.models import model_from_spec
from fer.speed import SpeedCache, StepTimer, choose, cpu_bf16_flag, cpu_model, label

MODELS = {  # name: (model config, batch, training crop): the shipped spaces' first trials
    "vgg_cnn 32-64-128-256": ({"name": "vgg_cnn", "channels": [32, 64, 128, 256]}, 64, 40),
    "seed_cnn": ({"name": "seed_cnn"}, 128, 48),
    "small_cnn": ({"name": "small_cnn"}, 128, 48),
    "dnn 1024-512-256 (pool 2)": ({"name": "dnn", "widths": [1024, 512, 256], "input_pool": 2, "norm": "batch"},
                                  256, 48),
}


def build(model_cfg: dict) -> torch.nn.Module:
    return model_from_spec(resolve_run({"model": model_cfg})["model"])


def main() -> None:
    p = parser(description=__doc__)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    header("Precision by measurement")
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"CPU: {cpu_model()}; bf16 flag: {cpu_bf16_flag() or 'none'}; torch capability "
          f"{torch.backends.cpu.get_cpu_capability()}{f'; ONEDNN_MAX_CPU_ISA={isa}' if isa else ''}\n")
    print("| model | threads | fp32 contiguous | fp32 channels_last | bf16 contiguous | bf16 channels_last | "
          "bf16 / fp32 | auto chooses | choosing took |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, (cfg, batch, crop) in MODELS.items():
        for threads in args.threads:
            torch.set_num_threads(threads)
            model = build(cfg)
            timer = StepTimer(model, torch.device("cpu"), batch, crop, steps=args.steps)
            rates = {(p, cl): timer.rate(p, cl) for p in ("fp32", "bf16") for cl in (False, True)}
            t0 = time.perf_counter()
            chosen = choose(model, torch.device("cpu"), batch, crop, cache=SpeedCache(f"/tmp/precision-{os.getpid()}"),
                            shape_key=f"{name}-{threads}")
            took = time.perf_counter() - t0
            fp32, bf16 = max(rates[("fp32", False)], rates[("fp32", True)]), max(rates[("bf16", False)],
                                                                                  rates[("bf16", True)])
            cells = " | ".join(f"{rates[k]:.0f}" for k in rates)
            picked = label(chosen.precision, chosen.channels_last)
            print(f"| {name} | {threads} | {cells} | {bf16 / fp32:.2f}x | {picked} | {took:.1f} s |")
    print("\nimages/s of training steps (forward, loss, backward) at the batch and crop of each model's first "
          "trial: a warm-up step, then the median of the timed ones; 'auto chooses' is fer.speed.choose on a "
          "fresh cache, measured again, and what that measurement cost.")


if __name__ == "__main__":
    cli(main)
