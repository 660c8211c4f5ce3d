"""What a new process pays for its optimiser's first steps: torch.optim's against fer.optim's.

Every Tune trial worker is a new process. torch.optim's wrappers import torch._dynamo on an
optimiser's first method call; fer.optim calls the same methods unwrapped. Each run here is a
fresh interpreter that has imported torch and fer: it builds the optimiser over a small CNN,
takes three steps under an LR scheduler and round-trips its state, and prints the seconds that
took and whether torch._dynamo got imported.

    python -m benchmarks.optimizer_start --runs 3
"""
from __future__ import annotations

import statistics
import subprocess
import sys

from benchmarks.common import cli, header, parser
from fer.speed import cpu_bf16_flag, cpu_model

CHILD = """
import sys, time
import torch
import fer.optim
cls = {"torch": torch.optim.SGD, "fer": fer.optim.SGD}[sys.argv[1]]
model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 46 * 46, 7))
x, y = torch.randn(16, 1, 48, 48), torch.randint(0, 7, (16,))
t0 = time.perf_counter()
opt = cls(model.parameters(), lr=0.1, momentum=0.9)
schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    schedule.step()
opt.load_state_dict(opt.state_dict())
print(time.perf_counter() - t0, "torch._dynamo" in sys.modules)
"""


def one_run(kind: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, check=True)
    seconds, imported = out.stdout.split()
    return float(seconds), imported == "True"


def main(argv: list[str] | None = None) -> int:
    p = parser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3, help="fresh processes per optimiser, alternated")
    args = p.parse_args(argv)
    header("An optimiser's first steps in a new process")
    print(f"CPU: {cpu_model()} ({cpu_bf16_flag() or 'no bf16 flag'})")
    seen: dict[str, list[tuple[float, bool]]] = {"torch": [], "fer": []}
    for _ in range(args.runs):
        for kind in seen:
            seen[kind].append(one_run(kind))
    for kind, runs in seen.items():
        times = ", ".join(f"{s:.2f}" for s, _ in runs)
        print(f"{kind}.optim: median {statistics.median(s for s, _ in runs):.2f} s ({times}); "
              f"torch._dynamo imported: {sorted({i for _, i in runs})}")
    return 0


if __name__ == "__main__":
    cli(main)
