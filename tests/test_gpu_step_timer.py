"""Data time on the training stream (trainers.step_timer), checked without a GPU by a fake stream clock.

On a GPU, DALI's output can be ready for the host before it is ready for the training stream, and
torch.cuda.synchronize() would also wait for DALI's own streams (its work for the next batches) as
part of the step. The fake events below keep the time of one stream: what the loader makes the
stream wait must come out as data time, and nothing may synchronize the whole device.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vsrvfi.trainers import engine
from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.distributed import setup_distributed
from vsrvfi.trainers.step_timer import StepTimer
from vsrvfi.trainers.tasks import make_task


class Stream:
    """The clock of one fake CUDA stream, in ms: work enqueued on it moves it on."""

    def __init__(self):
        self.now = 0.0


class FakeEvent:
    def __init__(self, stream: Stream):
        self.stream, self.t, self.waited = stream, None, False

    def record(self, stream=None):
        self.t = self.stream.now

    def elapsed_time(self, other: "FakeEvent") -> float:
        assert self.t is not None and other.t is not None
        return other.t - self.t

    def synchronize(self):
        self.waited = True


def test_the_wait_for_the_batch_on_the_stream_is_data_time():
    stream = Stream()
    events = []
    timer = StepTimer(torch.device("cuda"), event=lambda: events.append(FakeEvent(stream)) or events[-1])
    timer.start()
    stream.now += 30.0  # the training stream waits for DALI's output; the host had the batch at once
    timer.batch_ready()
    stream.now += 50.0  # the step's kernels
    assert timer.step_done() == pytest.approx((0.030, 0.080))
    assert events[-1].waited  # the step's end event was waited for (this stream only)
    timer.batch_ready()  # the next batch was already there
    stream.now += 20.0
    assert timer.step_done() == pytest.approx((0.0, 0.020))


def test_cpu_marks_are_wall_clock():
    timer = StepTimer(torch.device("cpu"))
    timer.start()
    timer.batch_ready()
    data, step = timer.step_done()
    assert 0 <= data <= step < 1


@pytest.mark.slow
def test_the_trainer_reports_the_streams_wait_and_never_synchronizes_the_device(tiny_data_dir, tmp_path, monkeypatch):
    stream = Stream()
    monkeypatch.setattr(engine, "StepTimer", lambda device: StepTimer(torch.device("cuda"), lambda: FakeEvent(stream)))

    def no_device_sync(*a, **kw):
        raise AssertionError("torch.cuda.synchronize() also waits for DALI's streams")

    monkeypatch.setattr(torch.cuda, "synchronize", no_device_sync)
    batches, step = engine.Trainer._batches, engine.Trainer.train_step

    def late_batches(self):
        for batch in batches(self):
            stream.now += 40.0  # ready for the host, but the stream waits 40 ms for it
            yield batch

    def timed_step(self, batch):
        stream.now += 10.0
        return step(self, batch)

    monkeypatch.setattr(engine.Trainer, "_batches", late_batches)
    monkeypatch.setattr(engine.Trainer, "train_step", timed_step)
    monkeypatch.setattr(engine.Trainer, "validate_and_save", lambda self: None)  # not what is tested
    cfg = load_config("vsrnet", [f"data.dir={tiny_data_dir}", "data.res=144p", "data.loader=png", "data.workers=1",
                                 "data.batch_size=1", "data.crop=32", "model.kwargs.flow=tiny", "train.steps=3",
                                 "train.val_every=0", "train.checkpoint_every=0", "train.log_every=1000",
                                 f"experiment.root={tmp_path}", "experiment.name=t", "train.device=cpu"])
    trainer = engine.Trainer(cfg, make_task(cfg), Path(tmp_path) / "t", setup_distributed(cfg.train.device))
    try:
        trainer.fit()
    finally:
        trainer.close()
    assert list(trainer.timings) == [pytest.approx((0.040, 0.050))] * 3
