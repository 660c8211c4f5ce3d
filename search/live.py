"""A running sweep seen from the driver: each trial's progress within its epoch, a compact
status line, and a watchdog for trials far slower than the plan expected.

A trial writes `progress.json` into its folder in the experiment (plain JSON: reading it runs
nothing) when it starts and then at most every few seconds: its epoch, batches done, the rate so
far and the precision it trains at, so the driver knows how a trial is doing before its first
epoch ends. On an object-store experiment (s3://) there is no such file and the status lines
say less.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from ray.tune import Callback

from fer.atomic import write_text
from search.budget import overdue
from search.context import current

HEARTBEAT_FILE = "progress.json"
HEARTBEAT_EVERY_S = 5.0
STATUS_EVERY_S = 60.0
SLOW_EPOCHS = 3  # the watchdog names a trial with no epoch after start-up and this many planned epochs


class Heartbeat:
    """`trainer.on_batch` of a trial: writes progress.json, atomically, at most every HEARTBEAT_EVERY_S."""

    def __init__(self, path: str | Path, speed: dict, batch_size: int, clock=time.time):
        self.path, self.speed, self.batch_size, self.clock = Path(path), speed, batch_size, clock
        self.epoch_t0, self.written, self.epoch = clock(), 0.0, 1
        self.write(0, 0)

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.epoch_t0 = epoch, self.clock()

    def __call__(self, done: int, total: int) -> None:
        if self.clock() - self.written >= HEARTBEAT_EVERY_S or done == total:
            self.write(done, total)

    def write(self, done: int, total: int) -> None:
        now = self.clock()
        self.written = now
        rate = done * self.batch_size / max(now - self.epoch_t0, 1e-9) if done else 0.0
        record = {"time": now, "epoch": self.epoch, "batch": done, "batches": total, "images_per_s": rate,
                  "speed": self.speed}
        try:
            write_text(self.path, json.dumps(record))  # (a failed write leaves no temporary file)
        except OSError:  # progress is for the eye: a full or read-only disk must not stop training
            pass


def read_heartbeat(trial_folder: str | None) -> dict | None:
    if not trial_folder:
        return None
    try:
        record = json.loads((Path(trial_folder) / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def slow_cause(beat: dict | None, expected_rate: float | None) -> str:
    """Why a trial is slow, from its heartbeat: emulated bf16 when fp32 measured faster here."""
    if not beat:
        return "no progress reported yet (its worker may still be starting)"
    rate, speed = beat.get("images_per_s") or 0.0, beat.get("speed") or {}
    rates = speed.get("rates") or {}
    layout = "channels_last" if speed.get("channels_last") else "contiguous"
    fp32 = rates.get(f"fp32, {layout}")
    said = f"{rate:.0f} images/s" if rate else f"batch {beat.get('batch', 0)} of {beat.get('batches', '?')}"
    if speed.get("precision") == "bf16" and fp32 and fp32 > rates.get(f"bf16, {layout}", 0.0):
        return f"{said}: {speed.get('warning') or 'bf16 is slower than fp32 on this CPU'}"
    if expected_rate and rate and rate < expected_rate / 2:
        return (f"{said}, against {expected_rate:.0f} measured before the sweep: the machine is busier than it "
                "was (other processes, or more trials than cores)")
    return said


class LiveStatus(Callback):
    """Every STATUS_EVERY_S: trials running, finished, stopped; the best score; time left; the
    budget's use so far. And once per trial, the watchdog's line."""

    def __init__(self, label: str, metric: str, every_s: float = STATUS_EVERY_S, stream=None):
        self.label, self.metric, self.every_s, self.stream = label, metric, every_s, stream
        self.started: dict[str, float] = {}
        self.named: set[str] = set()
        self.best: tuple[float, str] | None = None
        self.epoch_seconds: list[float] = []  # the trials' real epochs: the calibration ran alone on the machine
        self.last_line = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream or sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.metric in result and (self.best is None or result[self.metric] > self.best[0]):
            self.best = (result[self.metric], trial.trial_id)
        if result.get("epoch_wall_s"):
            self.epoch_seconds.append(result["epoch_wall_s"])

    def on_step_end(self, iteration, trials, **info):
        self.watch(trials)
        if time.monotonic() - self.last_line >= self.every_s:
            self.last_line = time.monotonic()
            self._say(self.status(trials))

    def status(self, trials) -> str:
        counts = {"running": 0, "pending": 0, "finished": 0, "stopped": 0, "failed": 0}
        for t in trials:
            ending = current().endings.get(t.trial_id, "")
            key = {"RUNNING": "running", "PENDING": "pending", "PAUSED": "running", "ERROR": "failed"}.get(
                t.status, "finished" if ending in ("finished", "") or ending.startswith("ended") else "stopped")
            counts[key] += 1
        parts = [", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no trials yet"]
        if within := self.within_epochs(trials):
            parts[0] += f" ({within})"
        if self.best:
            parts.append(f"best {self.metric} {self.best[0]:.4f} ({self.best[1]})")
        budget = current().budget
        if budget is not None and budget.deadline:  # (an epoch counts as training once it ends: not yet here)
            use = budget.use_so_far()
            parts.append(f"{budget.left() / 60:.0f} min left; {use.unit}s in trials {1 - use.share(use.idle):.0%} "
                         "of the time so far")
        return "; ".join(parts)

    @staticmethod
    def within_epochs(trials, most: int = 4) -> str:
        """`c2dff9be epoch 1 52% at 104 images/s, ...`: where the running trials are in their epochs."""
        out = []
        for t in trials:
            beat = read_heartbeat(t.path) if t.status == "RUNNING" else None
            if beat and beat.get("batches") and len(out) < most:
                out.append(f"{t.trial_id} epoch {beat['epoch']} {beat['batch'] / beat['batches']:.0%} at "
                           f"{beat['images_per_s']:.0f} images/s")
        return ", ".join(out)

    def watch(self, trials) -> None:
        """Name, once, each running trial with no epoch long after the plan expected several."""
        plan = current().plan
        epoch_s = statistics.median(self.epoch_seconds) if self.epoch_seconds else plan.epoch_s if plan else None
        if not epoch_s:
            return
        for t in trials:
            since = self.started.get(t.trial_id)
            if t.status != "RUNNING" or t.trial_id in self.named or since is None or t.last_result.get(
                    "training_iteration"):
                continue
            waited = time.time() - since
            if overdue(waited, epoch_s, SLOW_EPOCHS):
                self.named.add(t.trial_id)
                self._say(f"{t.trial_id} has reported no epoch after {waited / 60:.0f} min (epochs take "
                          f"{epoch_s:.0f} s here): {slow_cause(read_heartbeat(t.path), plan.images_per_s)}")

