"""Optional VGG19 perceptual loss (RIFE's VGGPerceptualLoss), from a local weights file only."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from vsrvfi.models.checkpoint import load_checkpoint
from vsrvfi.core.errors import CheckpointError

#: Outputs of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (indices in vgg19().features) and RIFE's weights.
DEFAULT_LAYERS = (1, 6, 11, 20, 29)
DEFAULT_WEIGHTS = (1.0 / 2.6, 1.0 / 4.8, 1.0 / 3.7, 1.0 / 5.6, 10.0 / 1.5)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _vgg19_features(n_modules: int) -> nn.Sequential:
    """The first `n_modules` of torchvision's vgg19().features (same indices), without building
    the 120M-parameter classifier or the unused deeper convolutions."""
    cfg, count = [], 0
    for item in cfgs["E"]:
        if count >= n_modules:
            break
        cfg.append(item)
        count += 1 if item == "M" else 2  # max-pool, or conv + ReLU
    return make_layers(cfg)[:n_modules]


class VGGPerceptualLoss(nn.Module):
    """0.1 * sum_l w_l * mean|phi_l(pred) - phi_l(target)| over VGG19 feature layers (frozen).

    `weights_path` is torchvision's ImageNet VGG19 state_dict (e.g. `vgg19-dcbb9e9d.pth`, keys
    `features.N.*`; a features-only state_dict with keys `N.*` also works). Nothing is downloaded.
    Inputs are RGB in [0, 1]; ImageNet normalisation is applied here. The target side is detached.
    """

    def __init__(self, weights_path: str | os.PathLike, layers: tuple[int, ...] = DEFAULT_LAYERS,
                 weights: tuple[float, ...] = DEFAULT_WEIGHTS, scale: float = 0.1) -> None:
        super().__init__()
        if len(layers) != len(weights):
            raise ValueError(f"{len(layers)} layers but {len(weights)} weights")
        path = Path(weights_path)
        if not path.is_file():
            raise CheckpointError(path, "no such VGG19 weights file (give a local copy of torchvision's "
                                   "vgg19-dcbb9e9d.pth; nothing is downloaded)")
        self.features = _vgg19_features(max(layers) + 1)
        self._load(path)
        self.features.requires_grad_(False).eval()
        self.layers = tuple(layers)
        self.weights = tuple(weights)
        self.scale = scale
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def _load(self, path: Path) -> None:
        state = load_checkpoint(path)
        if not isinstance(state, dict):
            raise CheckpointError(path, f"holds a {type(state).__name__}, not a VGG19 state_dict")
        state = {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()}
        own = self.features.state_dict()
        wanted = {k: state[k] for k in own if k in state}
        missing = [k for k in own if k not in wanted]
        bad = [k for k in wanted if tuple(wanted[k].shape) != tuple(own[k].shape)]
        if missing or bad:
            raise CheckpointError(path, f"not a VGG19 state_dict ({len(missing)} missing, {len(bad)} "
                                   f"shape-mismatched feature weights)")
        self.features.load_state_dict(wanted)

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.features.eval()  # frozen feature extractor
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self._features((target - self.mean) / self.std)
        preds = self._features((pred - self.mean) / self.std)
        loss = pred.new_zeros(())
        for w, a, b in zip(self.weights, preds, targets):
            loss = loss + w * (a - b).abs().mean()
        return self.scale * loss

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out.append(x)
        return out
