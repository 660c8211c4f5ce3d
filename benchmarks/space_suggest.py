"""What one suggestion of a search space costs the sweep's driver: the seconds and the peak memory
of `SearchSpace.define_by_run`, which samples every parameter and applies the space's parameter
budget (configs/dnn.yaml rescales each width list to the seed CNN's parameter count by bisection).

    python -m benchmarks.space_suggest                        # configs/dnn.yaml, 8 suggestions
    python -m benchmarks.space_suggest --space configs/cnn.yaml --n 20

Peak memory is the process's maximum resident set (getrusage), after the space is loaded and
after the suggestions: what the driver holds beside Ray and Tune on the head node.
"""
from __future__ import annotations

import resource
import time

from benchmarks.common import cli, parser


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # (kB on Linux)


def main(argv: list[str] | None = None) -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="configs/dnn.yaml", help="a space file (its first sweep)")
    p.add_argument("--n", type=int, default=8, help="suggestions to time")
    p.add_argument("--seed", type=int, default=3, help="the random sampler's seed")
    args = p.parse_args(argv)
    import optuna

    from search.space import load_sweeps

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_sweeps(args.space)[0]
    loaded = peak_mb()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    t = time.perf_counter()
    for _ in range(args.n):
        space.define_by_run(study.ask())
    each = (time.perf_counter() - t) / args.n
    print(f"{args.space}: {args.n} suggestions, {each * 1000:.1f} ms each; peak memory {loaded:.0f} MB after "
          f"loading the space, {peak_mb():.0f} MB after the suggestions")
    return 0


if __name__ == "__main__":
    cli(main)
