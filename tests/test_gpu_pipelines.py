"""On a GPU: DALI's GPU pipelines (NVDEC decoding, augmentation on the GPU) give the PNG loader's batches.

Marker `gpu`; every test here is skipped, with the reason, where torch sees no CUDA device or DALI
sees no GPU (`pytest -m gpu` on a GPU machine; benchmarks/gpu_suite.sh runs them). A test whose reader
needs NVDEC is skipped with the NVDEC probe's reason when that reader cannot decode one H.264 frame
here (vsrvfi.pipelines.nvdec; the suite hands its probe down in $VSRVFI_NVDEC_PROBE, else it is run
once): a libnvcuvid that loads can still fail at the first decode. GPU augmentation after CPU
decoding (gpu_reader="cpu", VP9 clips) needs no NVDEC and runs regardless. The clips are
the tiny test set (benchmarks/fixtures/clipfactory.py) in H.264, which NVDEC decodes; with VSRVFI_GPU_DATA=DATA_DIR
(a prepared 720p H.264 set, as the suite makes) the seed's setting is compared on it too.

What must be equal: the plan and the augmentation (clip, start, flags, crop: exactly) and the
pixels up to what NVDEC's YUV->RGB conversion allows. The PNG frames were converted by ffmpeg the
way DALI's CPU decoder converts (BT.601, bilinear chroma); NVDEC's output goes through DALI's own
CUDA conversion, whose chroma upsampling and rounding may differ at colour edges. BT.601 luma
(0.299 R + 0.587 G + 0.114 B) does not depend on the chroma at all for the same matrix, so it is
held to a tight bound (LUMA_*), RGB to a loose one (RGB_MEAN); a wrong frame, crop, flip or order
is off by far more than either on this moving content. Every comparison's measured differences
(max, mean, p99, PSNR, in 8-bit levels) go to the JSON file named by VSRVFI_GPU_REPORT, when set
(rewritten after each test).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from vsrvfi.pipelines import AugmentOptions, build_loader
from vsrvfi.pipelines.augment import apply_flags
from vsrvfi.pipelines.nvdec import probe_from_env, probe_nvdec
from benchmarks.fixtures.clipfactory import build_data_dir

LUMA_MEAN = float(os.environ.get("VSRVFI_GPU_LUMA_MEAN", 1.0))  # 8-bit levels
LUMA_P99 = float(os.environ.get("VSRVFI_GPU_LUMA_P99", 6.0))
RGB_MEAN = float(os.environ.get("VSRVFI_GPU_RGB_MEAN", 4.0))
READERS = ("legacy", "experimental")
ALL = AugmentOptions(hflip=0.5, vflip=0.5, rot90=0.5, reverse=0.5, swap_rgb=0.5)
MEASURED: list[dict] = []


def _no_gpu_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    try:
        from nvidia.dali.backend import GetCUDADeviceCount

        if GetCUDADeviceCount() < 1:
            return "DALI sees no GPU"
    except Exception as exc:  # noqa: BLE001 - any failure here means DALI cannot use the GPU
        return f"DALI cannot use the GPU: {exc}"
    return None


# VSRVFI_GPU_TESTS_ON_CPU=1 runs this module's logic on the CPU (DALI's CPU reader, VP9 clips): a check of
# the tests themselves before a GPU is lent, not of the GPU pipelines.
ON_CPU = os.environ.get("VSRVFI_GPU_TESTS_ON_CPU") == "1"
NO_GPU = None if ON_CPU else _no_gpu_reason()
DEVICE = "cpu" if ON_CPU else "gpu"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NO_GPU is not None, reason=NO_GPU or "")]
# The NVDEC probe (one H.264 frame per reader), at collection so that a skipped test builds no fixture;
# with VSRVFI_GPU_TESTS_ON_CPU=1 only a probe handed down in $VSRVFI_NVDEC_PROBE counts (none: no skip)
NVDEC: dict[str, str | None] = {} if NO_GPU else (probe_from_env() or ({} if ON_CPU else probe_nvdec()))


def nvdec_readers(*readers: str) -> list:
    """`readers` as parameters, each skipped with the probe's reason where it cannot decode H.264 here."""
    return [pytest.param(r, marks=pytest.mark.skipif(bool(NVDEC.get(r)), reason=NVDEC.get(r) or ""))
            for r in readers]


def worst(rows: list[dict]) -> list[dict]:
    """One row per (test, key): the largest max, mean and p99 and the lowest PSNR over its comparisons."""
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        w = out.setdefault((r["test"], r["key"]), {"test": r["test"], "key": r["key"], "comparisons": 0})
        w["comparisons"] += 1
        for part in ("rgb", "luma"):
            acc = w.setdefault(part, {"max": 0.0, "mean": 0.0, "p99": 0.0, "psnr": 99.0})
            for k in ("max", "mean", "p99"):
                acc[k] = max(acc[k], r[part][k])
            acc["psnr"] = min(acc["psnr"], r[part]["psnr"])
    return list(out.values())


@pytest.fixture(autouse=True)
def report():
    """After each test, write what the comparisons measured so far (worst per test and key) to
    $VSRVFI_GPU_REPORT: a run cut short keeps what it measured."""
    yield
    path = os.environ.get("VSRVFI_GPU_REPORT")
    if path and MEASURED:
        Path(path).write_text(json.dumps(worst(MEASURED), indent=1))


@pytest.fixture(scope="session")
def h264_data_dir(tmp_path_factory) -> Path:
    """The tiny test set (5 clips, 144p and 72p, PNG frames) in H.264 for NVDEC."""
    return build_data_dir(tmp_path_factory.mktemp("tiny_h264"), codec="vp9" if ON_CPU else "h264")


def loader(data_dir, kind: str, **kw):
    base = dict(kind=kind, data_dir=str(data_dir), res="144p", batch_size=4, workers=2,
                device=DEVICE if kind == "dali" else "cpu")
    base.update(kw)
    return build_loader(**base)


def levels(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().cpu() * 255.0


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of (..., 3, H, W) RGB (or BGR: the same for both sides of a comparison)."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (x * w).sum(-3)


def stats(diff: torch.Tensor) -> dict:
    d = diff.abs().flatten()
    mse = float((d ** 2).mean())
    return {"max": float(d.max()), "mean": float(d.mean()),
            "p99": float(torch.quantile(d[torch.randperm(d.numel())[:1_000_000]], 0.99)),
            "psnr": min(99.0, 10 * torch.log10(torch.tensor(255.0 ** 2 / max(mse, 1e-12))).item())}


def compare_images(test: str, key: str, gpu: torch.Tensor, ref: torch.Tensor) -> dict:
    """Record and check the difference of two image tensors (values in [0, 1])."""
    a, b = levels(gpu), levels(ref)
    assert a.shape == b.shape, (key, a.shape, b.shape)
    row = {"test": test, "key": key, "numel": a.numel(), "rgb": stats(a - b), "luma": stats(luma(a) - luma(b))}
    MEASURED.append(row)
    assert row["luma"]["mean"] <= LUMA_MEAN and row["luma"]["p99"] <= LUMA_P99, row
    assert row["rgb"]["mean"] <= RGB_MEAN, row
    return row


def compare_batches(test: str, gpu_batches: list[dict], ref_batches: list[dict]) -> None:
    assert len(gpu_batches) == len(ref_batches) > 0
    for bg, br in zip(gpu_batches, ref_batches):
        assert set(bg) == set(br)
        for k in bg:
            if k in ("timesteps",):
                assert torch.allclose(bg[k].cpu(), br[k]), k
            elif bg[k].is_floating_point():
                compare_images(test, k, bg[k], br[k])
            else:
                assert torch.equal(bg[k].cpu(), br[k]), k


# ------------------------------------------------------------------------------- same plan, same pixels

VARIANTS = {
    "sr-val-crop": ("sr", dict(split="val", crop=64, neighbors=1)),
    "sr-val-full-frames": ("sr", dict(split="val", crop=None, neighbors=2, scale=2, step=3)),
    "sr-lr_res": ("sr", dict(split="val", crop=(64, 96), scale=2, lr_res="72p")),
    "sr-fp16": ("sr", dict(split="val", crop=64, neighbors=1, dtype="float16")),
    "vfi-x8": ("vfi", dict(split="val", crop=(48, 64), targets=7)),
    "vfi-shuffled-stride2": ("vfi", dict(split="train", training=True, shuffle=True, augment=AugmentOptions.off(),
                                         crop=None, targets=1, stride=2, step=2)),
    "sr-clip_run-3": ("sr", dict(split="train", training=True, augment=AugmentOptions.off(), crop=None, clip_run=3,
                                 epoch_size=30, last_batch="partial")),
}


@pytest.mark.parametrize("reader", nvdec_readers(*READERS))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpu_loader_gives_the_png_batches(h264_data_dir, variant, reader):
    task, kw = VARIANTS[variant]
    gpu = list(loader(h264_data_dir, "dali", task=task, gpu_reader=reader, **kw))
    assert all(b[k].is_cuda != ON_CPU for b in gpu for k in b)
    ref = list(loader(h264_data_dir, "png", task=task, **kw))
    compare_batches(f"{variant}/{reader}", gpu, ref)


@pytest.mark.parametrize("task", ["sr", "vfi"])
def test_gpu_augmentation_after_cpu_decoding(tiny_data_dir, task):
    """gpu_reader="cpu": VP9 decoded by DALI's CPU reader, cropped, resized and augmented on the GPU,
    gives the PNG batches: the GPU path that needs no NVDEC (run even where the probe failed)."""
    kw = dict(task=task, split="val", crop=64, **(dict(neighbors=1) if task == "sr" else dict(targets=1)))
    gpu = list(loader(tiny_data_dir, "dali", gpu_reader="cpu", **kw))
    assert all(b[k].is_cuda != ON_CPU for b in gpu for k in b)
    ref = list(loader(tiny_data_dir, "png", **kw))
    compare_batches(f"cpu-decode-{task}/cpu", gpu, ref)


def samples(batches) -> list[dict]:
    return [{k: v[i].cpu() for k, v in b.items()} for b in batches for i in range(len(b["clip"]))]


@pytest.mark.parametrize("reader", nvdec_readers(*READERS))
@pytest.mark.parametrize("task", ["sr", "vfi"])
def test_gpu_augmentations_are_the_reference_transform(h264_data_dir, task, reader):
    """Each augmented sample equals apply_flags of the un-augmented PNG sample, with the flags and
    crop the GPU pipeline drew (crop and flips done on the GPU, LR resized there from the crop)."""
    size, scale = 64, 4
    common = dict(task=task, split="train", shuffle=False, step=3, last_batch="partial", batch_size=8)
    if task == "sr":
        common.update(neighbors=1, scale=scale)
    else:
        common.update(targets=3)
    ref = samples(loader(h264_data_dir, "png", training=False, crop=None, **common))
    aug = samples(loader(h264_data_dir, "dali", training=True, crop=size, augment=ALL, gpu_reader=reader, **common))
    assert len(ref) == len(aug) > 20
    for r, a in zip(ref, aug):
        assert (int(r["clip"]), int(r["start"])) == (int(a["clip"]), int(a["start"]))
        y, x = (int(v) for v in a["crop"])
        if task == "sr":
            assert y % scale == 0 and x % scale == 0
            s = size // scale
            expected = apply_flags({"hr": r["hr"][..., y:y + size, x:x + size],
                                    "lr": r["lr"][..., y // scale:y // scale + s, x // scale:x // scale + s]},
                                   a["aug"], "sr")
        else:
            expected = apply_flags({"frames": r["frames"][..., y:y + size, x:x + size],
                                    "target": r["target"][..., y:y + size, x:x + size],
                                    "timesteps": r["timesteps"]}, a["aug"], "vfi")
            assert torch.allclose(a["timesteps"], expected.pop("timesteps"))
        for k, v in expected.items():
            compare_images(f"augment-{task}/{reader}", k, a[k], v)
    flags = torch.stack([a["aug"] for a in aug]).float().mean(0)
    assert ((flags > 0.1) & (flags < 0.9)).all(), flags


@pytest.mark.skipif(bool(NVDEC.get("legacy")), reason=NVDEC.get("legacy") or "")
def test_gpu_loaders_on_two_devices_agree(h264_data_dir):
    if ON_CPU or torch.cuda.device_count() < 2:
        pytest.skip(f"{torch.cuda.device_count()} GPU visible; two are needed")
    kw = dict(task="vfi", split="train", training=True, crop=64, augment=ALL, epoch_size=16, seed=3)
    first = list(loader(h264_data_dir, "dali", device_id=0, **kw))
    second = list(loader(h264_data_dir, "dali", device_id=1, **kw))
    assert len(first) == len(second) > 0
    for b0, b1 in zip(first, second):
        for k in b0:
            assert b0[k].device == torch.device("cuda", 0) and b1[k].device == torch.device("cuda", 1), k
            assert torch.equal(b0[k].cpu(), b1[k].cpu()), k


# --------------------------------------------------------------------------- the prepared 720p set

def real_data() -> Path:
    path = os.environ.get("VSRVFI_GPU_DATA")
    if not path:
        pytest.skip("VSRVFI_GPU_DATA (a prepared H.264 DATA_DIR with 720p clips and frames) is not set")
    return Path(path)


@pytest.mark.parametrize("reader", nvdec_readers(*READERS))
@pytest.mark.parametrize("task", ["sr", "vfi"])
def test_gpu_loader_gives_the_png_batches_at_720p(task, reader):
    """The seed's setting (SR: 540x960 crops, batch 3, 3 frames, x4; VFI: 256x256, x8) on real clips."""
    data = real_data()
    kw = dict(res="720p", split="train", training=True, augment=AugmentOptions.off(), epoch_size=12)
    kw.update(dict(crop=(540, 960), batch_size=3, neighbors=1, scale=4) if task == "sr" else
              dict(crop=256, batch_size=4, targets=7))
    gpu = list(loader(data, "dali", task=task, gpu_reader=reader, **kw))
    # the crop positions are drawn by each loader's own generator: compare crops of the PNG loader's full
    # frames at the GPU pipeline's positions (same plan, so the same clips and starts)
    full = list(loader(data, "png", task=task, **{**kw, "crop": None}))
    assert len(gpu) == len(full) > 0
    for bg, bf in zip(gpu, full):
        assert torch.equal(bg["clip"].cpu(), bf["clip"]) and torch.equal(bg["start"].cpu(), bf["start"])
        for i, (y, x) in enumerate(bg["crop"].cpu().tolist()):
            h, w = kw["crop"] if isinstance(kw["crop"], tuple) else (kw["crop"], kw["crop"])
            if task == "sr":
                s = kw["scale"]
                compare_images(f"720p-{task}/{reader}", "hr", bg["hr"][i], bf["hr"][i][..., y:y + h, x:x + w])
                compare_images(f"720p-{task}/{reader}", "lr", bg["lr"][i],
                               bf["lr"][i][..., y // s:(y + h) // s, x // s:(x + w) // s])
            else:
                for k in ("frames", "target"):
                    compare_images(f"720p-{task}/{reader}", k, bg[k][i], bf[k][i][..., y:y + h, x:x + w])
