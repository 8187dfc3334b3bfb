"""The exponential moving average of the weights, as BasicSR keeps it (`SRModel.model_ema`).

BasicSR starts the average as a copy of the weights (or of a pretrained checkpoint's `params_ema`)
and after every optimizer step, the first included, sets ema = decay * ema + (1 - decay) * w. torch's
AveragedModel would copy the weights at its first update instead (4e-4 apart from BasicSR after one
step of EDVR), so it is made here as if it had already averaged once. Only parameters are averaged;
buffers keep their initial values, as in BasicSR. Validation and `best.pth` use the average.
"""
from __future__ import annotations

import os

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float, pretrained: str | os.PathLike | None = None,
             name: str = "") -> AveragedModel:
    """BasicSR's EMA of `model`; with `pretrained`, its EMA weights (else its weights) where they fit,
    as BasicSR loads `params_ema` into net_g_ema (keys the file lacks stay a copy of `model`)."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)))
    ema.n_averaged.fill_(1)  # the next update blends (BasicSR), it does not copy (torch's first update)
    if pretrained:
        from vsrvfi.models.load import load_pretrained

        load_pretrained(ema.module, pretrained, name, strict=False, prefer_ema=True)
    return ema
