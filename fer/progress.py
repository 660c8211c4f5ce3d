"""Progress within an epoch, for `fer train`: tqdm's bar on a terminal; elsewhere (a log file,
CI, a pipe) plain lines at most every 30 s, since a bar redrawn with carriage returns is
unreadable there. fer must run with PyTorch alone (a GPU machine may have nothing else), so
without tqdm there is no bar, only the epoch lines."""
from __future__ import annotations

import sys
from typing import TextIO

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - requirements.txt installs it
    tqdm = None

PLAIN_EVERY_S = 30.0


class _Lines:
    """A stream that turns tqdm's carriage-return redraws into one plain line each."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.split("\r"):
            if part.strip():
                self.stream.write(part.strip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


class EpochBar:
    """`trainer.on_batch`: a bar per epoch (batches done of the epoch's, images/s, time left)."""

    def __init__(self, batch_size: int, stream: TextIO | None = None, tty: bool | None = None,
                 desc: str | None = None, unit: str = "img"):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.batch_size, self.epoch, self.bar = batch_size, 0, None
        self.desc, self.unit = desc, unit  # a fixed label (fer predict's video frames), else "epoch N"

    def __call__(self, done: int, total: int) -> None:
        if tqdm is None:
            return
        if self.bar is None:
            self.epoch += 1
            quiet = {} if self.tty else {"mininterval": PLAIN_EVERY_S, "maxinterval": PLAIN_EVERY_S,
                                         "delay": PLAIN_EVERY_S}
            self.bar = tqdm(total=total * self.batch_size or None, desc=self.desc or f"epoch {self.epoch}",
                            unit=self.unit, unit_scale=True,
                            leave=False, file=self.stream if self.tty else _Lines(self.stream), dynamic_ncols=True,
                            **quiet)
        self.bar.update(done * self.batch_size - self.bar.n)
        if total and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
