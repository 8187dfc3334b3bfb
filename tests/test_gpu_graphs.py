"""Every GPU pipeline variant is defined here, on a machine without a GPU.

DALI checks a graph as it is defined: operator and argument names, argument types, where each input
may live (argument inputs on the CPU, a CPU operator never fed GPU data). Completing the definition
as build() starts it (Pipeline._build_graph, before any backend object exists) adds each operator's
schema check: required arguments present, unknown ones refused. The one thing that needs more than
the schema is whether an operator exists on the device it was placed on, checked against DALI's
registries. None of this touches CUDA, so a typo in a branch that only runs with device="gpu" fails
CI here instead of on the first GPU machine (test_a_typo_in_a_gpu_only_branch_fails_here proves it).
Values (a crop bigger than the frame, a bad layout string) are only seen when a pipeline runs.
"""
from __future__ import annotations

import inspect
import textwrap

import nvidia.dali.backend as dali_backend
import pytest
from nvidia.dali import fn, pipeline_def

from vsrvfi.pipelines import AugmentOptions, LoaderOptions
from vsrvfi.pipelines import dali_video
from vsrvfi.pipelines.dali_video import DaliLoader

REGISTERED = {"cpu": set(dali_backend.RegisteredCPUOps()), "gpu": set(dali_backend.RegisteredGPUOps()),
              "mixed": set(dali_backend.RegisteredMixedOps())}
ALL = AugmentOptions(hflip=0.5, vflip=0.5, rot90=0.5, reverse=0.5, swap_rgb=0.5)
ONLY = {name: AugmentOptions(**{k: (1.0 if k == name else 0.0) for k in ("hflip", "vflip", "rot90", "reverse",
                                                                           "swap_rgb")})
        for name in ("hflip", "vflip", "rot90", "reverse", "swap_rgb")}


def check_graph(pipe) -> list[tuple[str, str]]:
    """Finish defining `pipe`'s graph without building it and check what needs no device; returns
    (operator, device) in graph order. Raises on a schema error or an operator missing on its device."""
    pipe._build_graph()  # private, but it is what build() and serialize() run first: schema.CheckArgs per op
    placed = [(op._op.schema_name, op._op.device) for op in pipe._ops]
    missing = [f"{name} has no {device} implementation" for name, device in placed if name not in REGISTERED[device]]
    assert not missing, "; ".join(missing)
    return placed


def define(data_dir, **kw) -> tuple[DaliLoader, list]:
    """The loader's pipelines for these options, defined for GPU 0 but not built."""
    base = dict(kind="dali", data_dir=str(data_dir), res="144p", batch_size=4, workers=2, device="gpu",
                device_id=0, epoch_size=16)
    base.update(kw)
    loader = DaliLoader(LoaderOptions(**base))
    return loader, loader.define_pipelines()


VARIANTS = {
    "sr-train-crop-all-aug": dict(task="sr", split="train", training=True, crop=64, augment=ALL),
    "sr-val-full-frames": dict(task="sr", split="val", crop=None, neighbors=2, scale=2),
    "sr-lr_res-train": dict(task="sr", split="train", training=True, crop=64, scale=2, lr_res="72p", augment=ALL),
    "sr-lr_res-val-full": dict(task="sr", split="val", crop=None, scale=2, lr_res="72p"),
    "sr-fp16": dict(task="sr", split="train", training=True, crop=(48, 96), dtype="float16", augment=ALL),
    "sr-lr_res-fp16": dict(task="sr", split="val", crop=(64, 96), scale=2, lr_res="72p", dtype="float16"),
    "vfi-train-all-aug": dict(task="vfi", split="train", training=True, crop=64, augment=ALL),
    "vfi-x8-val": dict(task="vfi", split="val", crop=(48, 64), targets=7),
    "vfi-full-stride2-fp16": dict(task="vfi", split="val", crop=None, stride=2, dtype="float16"),
    "vfi-clip_run-2-readers-2": dict(task="vfi", split="train", training=True, crop=64, clip_run=2, readers=2,
                                     augment=ALL),
    **{f"sr-only-{k}": dict(task="sr", split="train", training=True, crop=64, augment=a) for k, a in ONLY.items()},
    **{f"vfi-only-{k}": dict(task="vfi", split="train", training=True, crop=64, augment=a) for k, a in ONLY.items()},
}


@pytest.mark.parametrize("reader", ["legacy", "experimental", "cpu"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpu_pipeline_graph_is_well_defined(tiny_data_dir, variant, reader):
    loader, pipes = define(tiny_data_dir, gpu_reader=reader, **VARIANTS[variant])
    assert len(pipes) == loader.opts.num_readers
    for pipe in pipes:
        placed = check_graph(pipe)
        reader_op = "readers__Video" if reader == "legacy" else "experimental__readers__Video"
        readers = [op for op in placed if op[0] == reader_op]
        decoder = "cpu" if reader == "cpu" else "gpu"  # cpu: CPU decoding, everything after it on the GPU
        assert readers and all(device == decoder for _, device in readers), placed
        # one output per name the iterator is given; the images leave the pipeline on the GPU
        assert len(pipe._graph_outputs) == len(loader.output_names())
        assert [o.device for o in pipe._graph_outputs[:2]] == ["gpu", "gpu"]
        ops = {name for name, _ in placed}
        aug = loader.opts.augmentation
        assert ("Flip" in ops) == (aug.hflip > 0 or aug.vflip > 0 or aug.rot90 > 0)
        assert ("Transpose" in ops) == (aug.rot90 > 0)
        assert ("ColorSpaceConversion" in ops) == (aug.swap_rgb > 0)


def _with_typo(func, old: str, new: str):
    """`func` recompiled from its source with `old` replaced by `new` (in the module's namespace)."""
    src = textwrap.dedent(inspect.getsource(func))
    assert old in src
    namespace = dict(vars(dali_video))
    exec(compile(src.replace(old, new), dali_video.__file__, "exec"), namespace)
    return namespace[func.__name__]


def test_a_typo_in_a_gpu_only_branch_fails_here(tiny_data_dir, monkeypatch):
    """A misspelled argument of the legacy reader (used only with device="gpu") passes every CPU
    test, since the CPU pipelines never define that branch, and fails the graph definition here."""
    monkeypatch.setattr(dali_video, "_read", _with_typo(dali_video._read, "image_type=types.RGB",
                                                        "image_typ=types.RGB"))
    opts = dict(task="sr", split="train", training=True, crop=64)
    for pipe in define(tiny_data_dir, device="cpu", device_id=None, **opts)[1]:
        check_graph(pipe)  # the CPU pipeline does not see it
    for pipe in define(tiny_data_dir, gpu_reader="experimental", **opts)[1]:
        check_graph(pipe)  # nor the other GPU reader
    with pytest.raises(KeyError, match="image_typ"):
        define(tiny_data_dir, gpu_reader="legacy", **opts)


def test_a_wrong_argument_type_fails_here(tiny_data_dir, monkeypatch):
    monkeypatch.setattr(dali_video, "_read", _with_typo(dali_video._read, "dtype=types.UINT8", 'dtype="uint8"'))
    with pytest.raises((TypeError, ValueError)):
        define(tiny_data_dir, task="vfi", split="val", crop=64)


def test_missing_arguments_and_operators_without_a_gpu_version_fail_the_check(tmp_path):
    file_list = tmp_path / "list.txt"  # never opened: the pipelines are not built

    @pipeline_def(batch_size=1, num_threads=1, device_id=0)
    def no_dtype():
        video, _ = fn.readers.video(device="gpu", file_list=str(file_list), sequence_length=1)
        return fn.cast(video)

    @pipeline_def(batch_size=1, num_threads=1, device_id=0)
    def cpu_only_operator_on_gpu_data():
        video, _ = fn.readers.video(device="gpu", file_list=str(file_list), sequence_length=1)
        return fn.bbox_paste(video, ratio=2.0)

    with pytest.raises(RuntimeError, match="dtype"):
        check_graph(no_dtype())
    with pytest.raises(AssertionError, match="BBoxPaste has no gpu implementation"):
        check_graph(cpu_only_operator_on_gpu_data())
    with pytest.raises(RuntimeError, match="incompatible device"):
        @pipeline_def(batch_size=1, num_threads=1, device_id=0)
        def gpu_data_into_a_cpu_operator():
            video, _ = fn.readers.video(device="gpu", file_list=str(file_list), sequence_length=1)
            return fn.flip(video, device="cpu", horizontal=1)

        gpu_data_into_a_cpu_operator()
