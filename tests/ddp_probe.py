"""Run under torchrun by test_trainer: two gloo ranks train VSRNet 2 steps and report what they saw."""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from vsrvfi.trainers.config import load_config
from vsrvfi.trainers.distributed import setup_distributed
from vsrvfi.trainers.engine import Trainer
from vsrvfi.trainers.tasks import make_task

data_dir, tmp, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
cfg = load_config("vsrnet", [f"data.dir={data_dir}", "data.res=144p", "data.loader=png", "data.workers=1",
                             "data.batch_size=2", "data.crop=32", "train.val_frames=4",
                             "model.kwargs.flow=tiny", "train.steps=2", "train.val_every=0", "train.checkpoint_every=0",
                             f"experiment.root={tmp}"])
info = setup_distributed("cpu")
task = make_task(cfg)
samples = [(int(c), int(s)) for b in task.train_loader(epoch=0, seed=0)
           for c, s in zip(b["clip"], b["start"])]
trainer = Trainer(cfg, task, tmp / "ddp", info)
trainer.fit()
trainer.close()
params = [float(p.detach().double().sum()) for p in trainer.model.parameters()]
out.mkdir(parents=True, exist_ok=True)
(out / f"rank{info.rank}.json").write_text(json.dumps({"samples": samples, "params": params}))
dist.destroy_process_group()
