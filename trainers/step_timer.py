"""Data time and step time of training steps, measured on the stream the steps run on.

What the trainer logs as data time is what the 2 % target is about, so it must not flatter the
loader. `torch.cuda.synchronize()` after every step would wait for every stream of the device,
DALI's too: DALI's work for the next batches, overlapping the step, would be counted as step time,
and the next batch would then be ready at once, so the data share would look smaller than it is.

On CUDA the marks are CUDA events recorded on the current (consumer) stream, and the end of a step
waits for that stream's event only. Data time is the time, on the GPU's clock, from the end of the
previous step to the batch being ready on that stream: the host waiting in the loader, DALI's output
not yet ready for the stream, the copy to the device. Step time runs from the same mark to the end of
the step, so data share = data time / step time. Without CUDA the marks are wall-clock times.
"""
from __future__ import annotations

import time
from typing import Callable

import torch


class StepTimer:
    """`start()` once (and after a step whose time is not kept), then per step: `batch_ready()` once the
    batch is on the device, `step_done()` after the step, which returns (data seconds, step seconds)
    and is the next step's start."""

    def __init__(self, device: torch.device, event: Callable[[], object] | None = None):
        self.cuda = device.type == "cuda"
        # an injectable event factory: the tests check the arithmetic and the waits without a GPU
        self._event = event or (lambda: torch.cuda.Event(enable_timing=True))
        self._start = self._ready = None

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        e = self._event()
        e.record()  # on the current stream: the one the step's kernels and the batch copies run on
        return e

    def start(self) -> None:
        self._start = self._mark()

    def batch_ready(self) -> None:
        self._ready = self._mark()

    def step_done(self) -> tuple[float, float]:
        end = self._mark()
        if self.cuda:
            end.synchronize()  # this stream's work up to here, not DALI's streams
            data = self._start.elapsed_time(self._ready) / 1e3
            step = self._start.elapsed_time(end) / 1e3
        else:
            data, step = self._ready - self._start, end - self._start
        self._start = end
        return data, step
