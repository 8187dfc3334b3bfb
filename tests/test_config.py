"""The typed training configuration: one-line errors with suggestions, YAML 1.2 values, the built-in
configs hold only what differs from the schema, LoaderOptions built from the data schema, recipes."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from vsrvfi.core.cli import run_cli
from vsrvfi.core.errors import UsageError
from vsrvfi.models.registry import available
from vsrvfi.pipelines.augment import AugmentOptions
from vsrvfi.pipelines.options import LoaderOptions
from vsrvfi.trainers import train
from vsrvfi.trainers.config import CONFIG_DIR, build_config, load_config, read_yaml, to_config, to_dict
from vsrvfi.trainers.engine import HISTORY_LEN, TrainState
from vsrvfi.trainers.recipes import RECIPES, make_recipe
from vsrvfi.trainers.schema import PER_SPLIT, RENAMED, TRAIN_ONLY, TRAINER_ONLY, DataConfig, loader_options

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(RECIPES)


def error_of(model: str, *overrides: str) -> str:
    with pytest.raises(UsageError) as exc:
        load_config(model, overrides)
    return str(exc.value)


@pytest.mark.parametrize("override, message", [
    ("train.stepz=10", "train.stepz: unknown key; did you mean train.steps?"),
    ("trian.steps=10", "trian.steps: unknown key; did you mean train.steps?"),
    ("data.augment.hflp=0", "data.augment.hflp: unknown key; did you mean data.augment.hflip?"),
    ("train.lr=1e-3", "train.lr: unknown key; did you mean optim.lr?"),
    ("task.tsa_iter=5", "task.tsa_iter: not a vsrnet key (edvr only)"),
    ("train.steps=abc", "train.steps: expected an integer, got 'abc'"),
    ("train.steps=null", "train.steps: expected an integer, got null"),
    ("optim.betas=[0.9, x]", "optim.betas: expected a list of numbers or null, got 'x'"),
    ("train=3", "train: expected a section, got 3"),
    ("train.steps.x=1", "train.steps.x: unknown key (train.steps is an integer, not a section)"),
    ("train.amp=bf61", "train.amp: 'bf61' is not one of off, bf16, fp16; did you mean bf16?"),
    ("train.steps=0", "train.steps: must be at least 1, got 0"),
    ("data.crop=[64]", "data.crop: expected a positive integer (square), [height, width] or null, got [64]"),
    ("data.augment.hflip=2", "data.augment.hflip: a probability must be in [0, 1], got 2.0"),
    ("model.size=xl", "model.size: 'xl' is not a size of vsrnet (have: base)"),
    ("model.name=edvrr", "model.name: no training recipe for 'edvrr'; did you mean edvr?"),
    ("task.kind=vfi", "task.kind: vsrnet is a sr model, not vfi"),
    ("trainsteps", "override 'trainsteps': expected key=value, e.g. train.lr=1e-4"),
    ("data.crop=[64,", "data.crop: '[64,' is not a valid YAML value"),
])
def test_bad_overrides_are_one_line_errors_naming_the_key(override, message):
    assert error_of("vsrnet", override) == message


def test_cli_prints_one_line_and_exits_2(capsys):
    for argv, line in ((["vsrnet", "train.stepz=10"], "error: train.stepz: unknown key; did you mean train.steps?"),
                       (["vsrnet", "train.steps=abc"], "error: train.steps: expected an integer, got 'abc'")):
        assert run_cli(train.main, argv) == 2
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [line] and captured.out == ""


def test_yaml_errors_name_the_file_and_base_is_kept(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("base: edvr.yaml\ntrain: {steps: 7}\ntask: {tsa_iter: 3}\n")
    cfg = load_config(good, ["train.seed=5"])
    assert (cfg.model.name, cfg.train.steps, cfg.task.tsa_iter, cfg.train.seed) == ("edvr", 7, 3, 5)
    assert cfg.optim.lr == pytest.approx(4e-4)  # from the base file
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: vsrnet.yaml\ntrain:\n  stepz: 10\n")
    with pytest.raises(UsageError, match=r"^\S*bad\.yaml: train\.stepz: unknown key; did you mean train\.steps\?$"):
        load_config(bad)


def test_values_are_yaml_1_2_and_typed():
    cfg = load_config("vsrnet", ["train.amp=off", "train.compile=yes", "optim.lr=1e-4", "experiment.name=001",
                                 "data.augment.hflip=true", "data.augment.vflip=false", "data.crop=[64, 96]",
                                 "data.dir=", "train.steps=20", "model.kwargs.flow=none"])
    assert cfg.train.amp == "off" and cfg.train.compile is True and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.experiment.name == "001" and cfg.data.dir is None and cfg.train.steps == 20
    assert (cfg.data.augment.hflip, cfg.data.augment.vflip) == (0.5, 0.0)  # AugmentOptions' switches
    assert list(cfg.data.crop) == [64, 96] and cfg.model.kwargs == {"flow": "none"}
    with pytest.raises(Exception):  # the resolved configuration is read-only and closed
        cfg.train.stepz = 3


@pytest.mark.parametrize("model", MODELS)
def test_builtin_configs_hold_only_what_differs_from_the_schema(model):
    defaults = to_dict(build_config([("defaults", {"model": {"name": model}})], ()))
    layers = read_yaml(CONFIG_DIR / f"{model}.yaml")
    assert len(layers) == 1  # no shared base file any more: the schema holds the defaults

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "kwargs":
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    same = []
    for key, value in leaves(layers[0][1]):
        node = defaults
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node == value and key != "model.name":
            same.append(key)
    assert not same, f"configs/{model}.yaml repeats defaults: {same}"
    cfg = load_config(model)
    assert cfg.model.size and cfg.task.kind == RECIPES[model].kind


def test_plain_dicts_round_trip_through_the_schema():
    cfg = load_config("edvr", ["task.tsa_iter=4", "data.crop=[32, 64]"])
    plain = to_dict(cfg)
    assert isinstance(plain["data"]["crop"], list) and to_config(plain) == cfg
    assert to_config(cfg) is cfg


# ------------------------------------------------------------------------------- data -> loader

def test_every_loader_option_comes_from_the_data_schema_or_is_per_split():
    loader_fields = {f.name for f in dataclasses.fields(LoaderOptions)}
    data_fields = [f.name for f in dataclasses.fields(DataConfig) if f.name not in TRAINER_ONLY]
    mapped = {RENAMED.get(n, n) for n in data_fields}
    assert mapped <= loader_fields, mapped - loader_fields
    assert mapped.isdisjoint(PER_SPLIT)
    assert loader_fields == mapped | set(PER_SPLIT), loader_fields ^ (mapped | set(PER_SPLIT))
    assert set(TRAIN_ONLY) <= mapped
    # one set of defaults: the data section's are LoaderOptions' own, but for the trainer's own choices
    lo, data = LoaderOptions(), DataConfig()
    differ = {n for n in data_fields if getattr(data, n) != getattr(lo, RENAMED.get(n, n))}
    assert differ == {"device", "crop", "dir", "res"}  # res: "auto" picks a tier the data set has


def test_loader_options_per_split():
    cfg = load_config("vsrnet", ["data.dir=/d", "data.batch_size=5", "data.crop=[32, 64]", "data.clip_run=2", "data.epoch_size=40", "data.device=cpu",
                                 "data.augment.swap_rgb=0.25", "data.lr_res=72p", "data.workers=3"])
    tr = loader_options(cfg.data, task="sr", split="train", epoch=3, seed=9, neighbors=1, scale=4)
    va = loader_options(cfg.data, task="sr", split="val", neighbors=1, scale=4)
    assert (tr.kind, tr.data_dir, tr.batch_size, tr.crop, tr.clip_run, tr.epoch_size, tr.epoch, tr.seed) == \
        ("dali", "/d", 5, (32, 64), 2, 40, 3, 9)
    assert tr.augment == AugmentOptions(swap_rgb=0.25) and tr.device == "cpu" and tr.lr_res == "72p"
    assert (va.batch_size, va.crop, va.clip_run, va.epoch_size, va.augment) == (5, None, None, None, AugmentOptions.off())
    assert va.workers == 3 and va.lr_res == "72p" and not va.is_training
    tr.validate(), va.validate()
    default_val = loader_options(load_config("vsrnet").data, task="sr", split="val")
    assert default_val.batch_size == 3 and default_val.crop is None  # other splits: full frames


# ------------------------------------------------------------------------------------------ recipes

def test_every_model_has_a_recipe():
    assert set(RECIPES) == {name for name, _ in available()}


def test_engine_tasks_and_train_name_no_model():
    """Model-specific training lives in recipes: no model name as a string in the engine or the tasks."""
    for module in ("engine", "tasks", "train", "schema", "config"):
        tree = ast.parse((ROOT / "trainers" / f"{module}.py").read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        names = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                 and id(n) not in docstrings and n.value.lower() in RECIPES]
        assert not names, f"trainers/{module}.py names {names}"


def test_edvr_tsa_only_warm_start_trains_only_the_fusion_first():
    cfg = load_config("edvr", ["task.tsa_iter=2", "model.kwargs.num_frame=3"])
    recipe = make_recipe(cfg)
    from vsrvfi.models.registry import build_model

    model = build_model("edvr", "m", **recipe.model_kwargs())
    recipe.before_step(model, 0)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fusion"}
    recipe.before_step(model, 2)
    assert all(p.requires_grad for p in model.parameters())
    assert recipe.frames == 3 and recipe.model_kwargs() == {"num_frame": 3, "scale": 4}


def test_recipe_defaults_and_checks():
    assert make_recipe(load_config("edvr")).frames == 5  # the builder's default
    assert make_recipe(load_config("vsrnet")).frames == 3
    assert load_config("vsrnet").task.loss == "mse_y" and load_config("edvr").task.loss_reduction == "sum"
    assert make_recipe(load_config("rife")).timestep(torch.tensor([0.25])) == 0.5  # RIFE base: middle frame only
    assert make_recipe(load_config("rife", ["model.size=m"])).timestep(torch.tensor([0.25])) == 0.25
    with pytest.raises(UsageError, match="model.size=m"):
        make_recipe(load_config("rife", ["task.targets=3"]))
    assert make_recipe(load_config("ifrnet", ["task.pseudo_flow=dis", "task.dis_preset=fast"])).labeler.preset == "fast"


def test_history_is_bounded():
    state = TrainState(history=[(i, 1.0) for i in range(HISTORY_LEN + 500)])  # an older checkpoint's
    assert len(state.history) == HISTORY_LEN and state.history[0] == (500, 1.0)
    state.record(10**6, 2.0)
    assert len(state.history) == HISTORY_LEN and state.history[-1] == (10**6, 2.0)


def test_resolved_config_yaml_loads_back(tmp_path):
    cfg = load_config("ifrnet", ["task.pseudo_flow=dis", "train.steps=9"])
    from vsrvfi.trainers.config import save_config

    save_config(cfg, tmp_path / "config.yaml")
    again = OmegaConf.load(tmp_path / "config.yaml")
    assert to_config(OmegaConf.to_container(again)) == cfg


def test_data_res_auto_picks_a_tier_the_data_set_has(tmp_path):
    for res in ("272p", "136p"):
        clip = tmp_path / res / "scenes" / "train" / "a-s0000.mp4"
        clip.parent.mkdir(parents=True)
        clip.write_bytes(b"x")
    assert load_config("vsrnet", [f"data.dir={tmp_path}"]).data.res == "272p"  # the nearest to 540p
    (tmp_path / "540p" / "scenes" / "train").mkdir(parents=True)
    (tmp_path / "540p" / "scenes" / "train" / "a-s0000.mp4").write_bytes(b"x")
    assert load_config("vsrnet", [f"data.dir={tmp_path}"]).data.res == "540p"
    assert load_config("vsrnet", [f"data.dir={tmp_path}", "data.res=136p"]).data.res == "136p"
    assert load_config("vsrnet", [f"data.dir={tmp_path / 'none'}"]).data.res == "540p"  # the loader says what is missing
    with pytest.raises(UsageError, match=r"data.res: '999x' is not a resolution"):
        load_config("vsrnet", [f"data.dir={tmp_path}", "data.res=999x"])
