"""Whether a trial gains from CPUs a stopped one freed: the training rate of a space's first trial
alone at one thread, alone at all the machine's threads (a grown survivor), and as many copies
side by side at one thread each (trials that were not stopped), on the same data.

    python -m benchmarks.grow_gain configs/dnn.yaml --data ../shared/data/fer2013.csv.gz --epochs 8

A sweep grows its survivors (search.schedulers) because a stopped trial's CPUs are otherwise
idle once no new trial starts. That pays only as far as one trial speeds up with threads: a
memory-bound MLP may not, a convolution usually does. Each arrangement runs in fresh processes
(spawned), trains `--epochs` epochs of the first trial's config and reports the median epoch.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import statistics
from pathlib import Path

from benchmarks.common import cli, header, parser


def epochs_at(space_file: str, data: str | None, threads: int, epochs: int, start, out) -> None:
    """In a spawned process: train `epochs` epochs at `threads` threads once `start` is set; put
    the median epoch's training images/s in `out`."""
    import torch

    torch.set_num_threads(threads)
    from fer.config import resolve_run
    from fer.data import load_data, split_for_training
    from fer.train import Trainer
    from search.plan import calibration_config
    from search.space import load_sweeps

    space = load_sweeps(space_file)[0]
    run = resolve_run(calibration_config(space), source=f"{space_file}: first trial")
    train, val, _ = split_for_training(load_data(data), run["train"])
    trainer = Trainer.from_run(run, train, val)
    try:
        start.wait()
        rates = [trainer.train_epoch()["images_per_s"] for _ in range(epochs)]
    except KeyboardInterrupt:  # a Ctrl-C reaches the whole group: the parent says it, once
        return
    out.put(statistics.median(rates[1:] or rates))  # the first epoch warms up the allocator


def arrangement(args, threads: int, copies: int) -> list[float]:
    """Images/s of each of `copies` trials trained side by side at `threads` threads each."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=epochs_at, args=(args.space, args.data, threads, args.epochs, start, out))
             for _ in range(copies)]
    for p in procs:
        p.start()
    start.set()  # (each process waits for it only after loading: loading is not timed)
    rates = []
    while len(rates) < copies:  # a process that died without its rate would leave get() waiting for ever
        try:
            rates.append(out.get(timeout=5))
        except queue.Empty:
            if dead := [p.exitcode for p in procs if p.exitcode not in (None, 0)]:
                raise SystemExit(f"grow_gain: a training process exited {dead[0]}; its traceback is above") from None
    for p in procs:
        p.join()
    return rates


def main(argv: list[str] | None = None) -> int:
    p = parser(description=__doc__.split("\n\n")[0])
    p.add_argument("space", help="a space file of one sweep (configs/dnn.yaml)")
    p.add_argument("--data", default=None, help="a FER2013 CSV (default: the built-in synthetic faces)")
    p.add_argument("--epochs", type=int, default=8, help="epochs timed per arrangement (median of all but the first)")
    args = p.parse_args(argv)
    from fer.errors import FerError
    from search.space import load_sweeps

    try:
        load_sweeps(args.space)  # its errors here, in one line, before any process starts
    except FerError as e:
        p.error(str(e))
    if args.data and not Path(args.data).exists():
        p.error(f"--data: {args.data}: no such file")
    cpus = os.cpu_count() or 1
    header(f"Growing a trial: {args.space}, first trial")
    alone1 = arrangement(args, 1, 1)[0]
    alone_all = arrangement(args, cpus, 1)[0]
    side = arrangement(args, 1, cpus)
    print("| arrangement | images/s per trial | images/s on the machine |\n| --- | ---: | ---: |")
    print(f"| one trial, 1 thread, alone | {alone1:.0f} | {alone1:.0f} |")
    print(f"| one trial, {cpus} threads (grown) | {alone_all:.0f} | {alone_all:.0f} |")
    print(f"| {cpus} trials side by side, 1 thread each | {statistics.mean(side):.0f} | {sum(side):.0f} |")
    print(f"\ngrowing to {cpus} threads: {alone_all / statistics.mean(side):.2f}x the trial's rate beside the "
          f"others; the machine's rate {alone_all / sum(side):.2f}x that of {cpus} trials side by side")
    return 0


if __name__ == "__main__":
    cli(main)
