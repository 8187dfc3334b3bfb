"""Fault injection: what happens when things fail in the middle (issue 13).

kill -9 of the trainer (in a step, in validation, in a checkpoint write) and of prepare_data; clips
and frames that go bad after preparation; a full disk; two writers on one folder; non-finite inputs.
The longer form, every fault many times with a table, is `python -m benchmarks.faults`; both cause
the faults with benchmarks/fixtures/inject.py.
"""
from __future__ import annotations

import errno
import math
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from vsrvfi.core.errors import PathError, UsageError
from benchmarks.fixtures.inject import (ENV, PREPARE, PY, ROOT, STAGES, DamageAt, Poison, alive, assert_same_state,
                                       checkpoint_files, damage, in_process_trainer, prepare, rank_pids, run_train,
                                       sigterm_cases, sigterm_when, temp_files, train_args, tree)
from vsrvfi.models.checkpoint import load_checkpoint


# ---------------------------------------------------------------------------- 1. kill -9 of the trainer

@pytest.mark.slow
def test_kill9_in_step_validation_and_checkpoint_write_resumes_bit_exact(tiny_data_dir, tmp_path):
    """Three kills in one run, each at a reproducible point; every restart resumes from the last
    complete checkpoint, no checkpoint is ever unreadable, and the end equals an uninterrupted run."""
    common = ["train.steps=8", "train.val_every=4", "train.checkpoint_every=2"]
    ref = run_train("none:0", train_args(tiny_data_dir, tmp_path, "ref", *common))
    assert ref.returncode == 0, ref.stderr[-3000:]

    args = train_args(tiny_data_dir, tmp_path, "cut", *common)
    run_dir = tmp_path / "cut"
    # (fault, checkpoint step the restart must resume from); each run resumes the previous one
    plan = [("step:3", 2),   # killed inside step 3: last.pth of step 2 survives
            ("save:2", 2),   # resumed at 2, killed half-way through writing last.pth of step 4 (after best.pth)
            ("val:1", 2)]    # resumed at 2 again, killed inside the validation of step 4
    for i, (fault, expect) in enumerate(plan):
        res = run_train(fault, args, resume=i > 0)
        assert res.returncode == -signal.SIGKILL, (fault, res.stderr[-3000:])
        for p in checkpoint_files(run_dir):  # never an unreadable checkpoint under a final name
            load_checkpoint(p)
        assert load_checkpoint(run_dir / "checkpoints" / "last.pth")["state"]["step"] == expect, fault
        if fault.startswith("save"):
            assert temp_files(run_dir), "the half-written checkpoint should be a temporary"
    final = run_train("none:0", args, resume=True)
    assert final.returncode == 0, final.stderr[-3000:]
    assert re.search(r"resumed from \S+last\.pth at step 2", final.stderr + final.stdout)
    assert temp_files(run_dir) == [], "the temporary a kill left must be removed by the next run"
    assert_same_state(load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pth"),
                      load_checkpoint(run_dir / "checkpoints" / "last.pth"))


# ------------------------------------------------------------------------------------ 4. a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs; skipped where this machine does not allow mounting one."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip() or res.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_checkpoint_write_keeps_the_previous_one_and_says_so(small_disk):
    from vsrvfi.models.checkpoint import save_checkpoint

    path = small_disk / "checkpoints" / "last.pth"
    save_checkpoint({"step": 1, "w": torch.zeros(10)}, path)
    before = path.read_bytes()
    with pytest.raises(PathError) as e:
        save_checkpoint({"step": 2, "w": torch.zeros(1_000_000)}, path)  # 4 MB into 1 MiB
    assert "no space left" in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 1
    assert temp_files(small_disk) == []


def test_full_disk_clip_write_keeps_the_previous_clip_and_says_so(small_disk, tiny_data_dir):
    from vsrvfi.core.atomic import atomic_path
    from vsrvfi.core.ffmpeg import run_ffmpeg

    clip = small_disk / "clip.mp4"
    src = next(tiny_data_dir.glob("144p/scenes/train/*.mp4"))
    clip.write_bytes(src.read_bytes())
    before = clip.read_bytes()
    with pytest.raises(PathError) as e, atomic_path(clip) as tmp:  # lossless 320x180 for 10 s: far over 1 MiB
        run_ffmpeg(["-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=10", "-c:v", "ffv1",
                    "-f", "matroska", str(tmp)], clip)
    assert "no space left" in str(e.value).lower() and "\n" not in str(e.value), str(e.value)
    assert clip.read_bytes() == before and temp_files(small_disk) == []


def test_enospc_anywhere_in_a_write_is_one_line_and_keeps_the_file(tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: a full disk simulated at the write and at the rename."""
    from vsrvfi.models import checkpoint

    path = tmp_path / "last.pth"
    checkpoint.save_checkpoint({"step": 1}, path)
    real_save = checkpoint.torch.save

    def full_save(obj, f, *a, **k):  # what torch reports: a RuntimeError raised while handling the OSError
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(checkpoint.torch, "save", full_save)
    with pytest.raises(PathError, match="no space left"):
        checkpoint.save_checkpoint({"step": 2}, path)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)

    def full_replace(a, b):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_replace)
    with pytest.raises(PathError, match="no space left"):
        checkpoint.save_checkpoint({"step": 3}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1 and temp_files(tmp_path) == []


# ----------------------------------------------------------------------- 5. two writers on one folder

def test_folder_lock_refuses_a_second_holder_names_it_and_dies_with_it(tmp_path):
    from vsrvfi.core.lock import FolderLock, folder_lock

    with folder_lock(tmp_path, "the data set"):
        with pytest.raises(UsageError) as e:
            FolderLock(tmp_path, "the data set").acquire()
        assert f"in use by process {os.getpid()}" in str(e.value) and "\n" not in str(e.value)
    FolderLock(tmp_path).acquire().release()  # released at the end of the block

    holder = subprocess.Popen([PY, "-c", "import sys, time; from vsrvfi.core.lock import FolderLock; "
                               f"lock = FolderLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UsageError, match=f"process {holder.pid}"):
        FolderLock(tmp_path).acquire()
    holder.kill()  # kill -9: no cleanup runs, the kernel frees the lock
    holder.wait()
    FolderLock(tmp_path).acquire().release()


def test_a_new_holder_removes_the_temporaries_a_killed_one_left(tmp_path):
    from vsrvfi.core.lock import folder_lock

    stale = [tmp_path / "checkpoints" / ".last.tmp.0123abcd.pth", tmp_path / "144p" / "scenes" / "train" /
             ".c-s0000.tmp.89abcdef.mp4", tmp_path / "144p" / "frames" / "train" / ".c-s0000.tmp.deadbeef" / "000001.png"]
    keep = [tmp_path / "checkpoints" / "last.pth", tmp_path / "144p" / "frames" / "train" / "c-s0001" / "000001.png"]
    for p in stale + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    with folder_lock(tmp_path):
        pass
    assert temp_files(tmp_path) == [] and all(p.exists() for p in keep)


# ---------------------------------------------------------------- 3. clips that go bad after preparation


@pytest.fixture
def own_data(tiny_data_dir, tmp_path) -> Path:
    """A private copy of the tiny data set (144p and 72p, clips and frames) to damage."""
    import shutil

    return Path(shutil.copytree(tiny_data_dir, tmp_path / "data"))


@pytest.mark.parametrize("how", ["deleted", "truncated", "garbage", "empty"])
def test_png_frame_gone_bad_before_training_is_skipped_and_counted(own_data, tmp_path, how, seeded_single_thread):
    clip = own_data / "144p" / "frames" / "train" / "tiny-s0001"
    damage(clip, how)
    trainer = in_process_trainer(own_data, tmp_path / "run", "train.steps=6", "data.on_bad_clip=skip")
    state = trainer.fit()
    trainer.close()
    assert state.step == 6 and state.bad_clips == ["tiny-s0001"]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_png_frame_gone_bad_while_training_stops_with_a_checkpoint_naming_the_clip(own_data, tmp_path,
                                                                                   seeded_single_thread):
    from vsrvfi.pipelines import BadClip

    clip = own_data / "144p" / "frames" / "train" / "tiny-s0002"
    trainer = in_process_trainer(own_data, tmp_path / "run", "train.steps=30",
                                 task_wrapper=lambda t: DamageAt(t, 2, clip, "garbage"))
    with pytest.raises(BadClip) as e:
        trainer.fit()
    trainer.close()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(clip)) and ".png: cannot read PNG frame" in msg, msg
    assert "training stopped at step" in msg and "last.pth" in msg and "on_bad_clip=skip" in msg
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pth")
    assert ckpt["state"]["step"] == trainer.state.step >= 2


def test_png_frame_gone_bad_while_training_is_skipped_and_the_run_finishes(own_data, tmp_path, seeded_single_thread):
    clip = own_data / "144p" / "frames" / "train" / "tiny-s0000"
    trainer = in_process_trainer(own_data, tmp_path / "run", "train.steps=20", "data.on_bad_clip=skip",
                                 task_wrapper=lambda t: DamageAt(t, 1, clip, "truncated"))
    state = trainer.fit()
    trainer.close()
    assert state.step == 20 and state.bad_clips == ["tiny-s0000"]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pth")
    assert ckpt["state"]["bad_clips"] == ["tiny-s0000"]  # a resumed run keeps it out too


def test_dali_clip_gone_bad_while_training_is_named_and_skipped(own_data, tmp_path, seeded_single_thread):
    clip = own_data / "144p" / "scenes" / "train" / "tiny-s0001.mp4"
    # clip_run 1: every sample its own read, so the damaged clip is read again within the 12 steps
    trainer = in_process_trainer(own_data, tmp_path / "run", "train.steps=12", "data.loader=dali", "data.device=cpu",
                                 "data.clip_run=1", "data.on_bad_clip=skip",
                                 task_wrapper=lambda t: DamageAt(t, 2, clip, "garbage"))
    state = trainer.fit()
    trainer.close()
    assert state.step == 12 and state.bad_clips == ["tiny-s0001"]


def test_dali_clip_with_garbage_inside_an_intact_container_is_found_and_named(own_data, tmp_path,
                                                                             seeded_single_thread):
    """DALI's decoder error then names no file ("Failed to send packet to decoder"): the trainer finds the clip."""
    from vsrvfi.pipelines import BadClip

    clip = own_data / "144p" / "scenes" / "train" / "tiny-s0001.mp4"
    data = clip.read_bytes()

    class MidGarbage(DamageAt):
        def training_loss(self, model, batch, step):
            if step == self.at:
                # seeded garbage: which of DALI's errors random bytes set off varies with them (this seed: the decoder's)
                self.path.write_bytes(data[: len(data) // 2] + random.Random(0).randbytes(len(data) - len(data) // 2))
            return self._task.training_loss(model, batch, step)

    trainer = in_process_trainer(own_data, tmp_path / "run", "train.steps=12", "data.loader=dali", "data.device=cpu",
                                 "data.clip_run=1", task_wrapper=lambda t: MidGarbage(t, 2, clip, ""))
    with pytest.raises(BadClip) as e:
        trainer.fit()
    trainer.close()
    assert str(e.value).startswith(f"{clip}: cannot be decoded (") and "\n" not in str(e.value)


@pytest.mark.slow
def test_bad_clip_stops_the_training_command_in_one_line_with_a_checkpoint(own_data, tmp_path):
    damage(own_data / "144p" / "scenes" / "train" / "tiny-s0002.mp4", "truncated")
    res = run_train("none:0", train_args(own_data, tmp_path, "run", "train.steps=4", "data.loader=dali",
                                         "data.device=cpu"))
    lines = [ln for ln in res.stderr.replace("\r", "\n").splitlines() if ln.strip() and "it/s]" not in ln
             and "step/s" not in ln and "?step" not in ln]
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    assert re.fullmatch(r"error: \S+/tiny-s0002\.mp4: cannot be read \(corrupt or truncated .*\); training stopped "
                        r"at step 0, checkpoint saved to \S+last\.pth; .*--resume", lines[0]), lines[0]


# ------------------------------------------------------------------------------ 2. kill -9 of prepare_data


@pytest.mark.slow
def test_kill9_of_prepare_data_in_every_stage_then_a_rerun_gives_the_same_bytes(demo_source, tmp_path):
    prepare(demo_source, tmp_path / "ref")
    reference = tree(tmp_path / "ref")
    data = tmp_path / "data"
    for stage, when in STAGES.items():
        status, kids = prepare(demo_source, data, when)
        assert status == -signal.SIGKILL, f"finished before the {stage} stage was reached"
        t0 = time.monotonic()
        while any(alive(k) for k in kids) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert not [k for k in kids if alive(k)], f"ffmpeg outlived prepare_data killed in {stage}"
    prepare(demo_source, data)
    got = tree(data)
    assert sorted(got) == sorted(reference)
    assert [k for k in reference if got[k] != reference[k]] == []


# ----------------------------------------------------------------------- 5. two writers on one folder (CLI)

def one_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.replace("\r", "\n").splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_a_second_prepare_data_and_a_second_training_on_one_folder_are_refused(demo_source, tiny_data_dir, tmp_path):
    data = tmp_path / "data"
    first = subprocess.Popen([PY, "-m", "vsrvfi.tools.prepare_data", str(demo_source), str(data), *PREPARE], cwd=ROOT,
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not (data / ".lock").exists() or not (data / ".lock").read_text().strip():
        assert time.monotonic() - t0 < 60 and first.poll() is None
        time.sleep(0.01)
    second = subprocess.run([PY, "-m", "vsrvfi.tools.prepare_data", str(demo_source), str(data), *PREPARE], cwd=ROOT,
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert one_line(second) == f"error: {data}: the data set is in use by process {first.pid}; wait for it to " \
                               f"finish or stop it (the lock goes with the process)"
    assert first.wait(timeout=120) == 0  # undisturbed

    run = tmp_path / "exp" / "run"
    args = train_args(tiny_data_dir, tmp_path / "exp", "run", "train.steps=100000", "train.val_every=0",
                      "train.checkpoint_every=1")
    trainer = subprocess.Popen([PY, "-m", "vsrvfi.trainers.train", *args], cwd=ROOT, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while not (run / "checkpoints" / "last.pth").exists():
        assert time.monotonic() - t0 < 120 and trainer.poll() is None
        time.sleep(0.05)
    again = subprocess.run([PY, "-m", "vsrvfi.trainers.train", *args, "--resume"], cwd=ROOT, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert one_line(again) == f"error: {run}: the run folder is in use by process {trainer.pid}; wait for it " \
                              f"to finish or stop it (the lock goes with the process)"
    trainer.kill()  # kill -9: the lock goes with it; a resume takes over
    trainer.wait()
    resumed = subprocess.run([PY, "-m", "vsrvfi.trainers.train", *args[:-3], "train.steps=2", "train.val_every=0",
                              "train.checkpoint_every=1", "--resume"], cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


# ------------------------------------------------------------------------ 6. non-finite inputs and losses


def test_nan_frames_and_exploding_losses_are_skipped_rolled_back_and_logged(tiny_data_dir, tmp_path, capsys,
                                                                         seeded_single_thread):
    trainer = in_process_trainer(tiny_data_dir, tmp_path / "run", "train.steps=10", "train.checkpoint_every=2",
                                 "train.guard_patience=3",
                                 task_wrapper=lambda t: Poison(t, nan_steps=(3, 4), explode_steps=(5, 8)))
    state = trainer.fit()
    trainer.close()
    out = capsys.readouterr().out
    assert state.step == 10
    assert trainer.guard.skipped_total == 4 and trainer.guard.rollbacks == 1 and state.lr_scale == 0.5
    assert "step 3: skipped (loss nan, 1 in a row)" in out and "step 8: skipped (loss inf, 1 in a row)" in out
    assert re.search(r"divergence: rolled back to \S+last\.pth, lr x0\.5", out)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    # the refused steps' forward passes must not have left NaN in BatchNorm's running statistics
    assert all(torch.isfinite(b).all() for b in trainer.model.buffers())
    assert math.isfinite(state.best_psnr), "validation after the skipped steps scored NaN"
    assert all(map(torch.isfinite, map(torch.tensor, [loss for _, loss in state.history])))


# ------------------------------------------------------------- 1b. kill -9 of one of two DDP processes


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_kill9_of_one_ddp_process_stops_the_other_in_one_line_and_resume_continues(tiny_data_dir, tmp_path, victim):
    run = tmp_path / "ddp"
    args = train_args(tiny_data_dir, tmp_path, "ddp", "train.steps=100000", "train.val_every=0",
                      "train.checkpoint_every=1")
    launch = [PY, "-m", "vsrvfi.trainers.launch", "--standalone", "--nproc_per_node=2", "-m", "vsrvfi.trainers.train"]
    proc = subprocess.Popen([*launch, *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    t0 = time.monotonic()
    while not (run / "checkpoints" / "last.pth").exists():
        assert time.monotonic() - t0 < 180 and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps on
    pids = rank_pids(proc.pid)
    assert sorted(pids) == [0, 1], pids
    os.kill(pids[victim], signal.SIGKILL)
    t1 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    secs = time.monotonic() - t1
    assert proc.returncode == 128 + signal.SIGKILL and secs < 60, (secs, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    # the last thing said (after rank 0's progress bar, which a killed rank 0 leaves without its newline)
    assert re.search(rf"error: rank {victim}: was stopped by SIGKILL( \(its output: \S+\))?\n?$", err), err[-2000:]
    said = re.findall(r"error: .*", err)  # the launcher's line, and at most the survivor's own before it
    assert len(said) <= 2 and all("another process of the run stopped" in ln for ln in said[:-1]), said
    survivor = pids[1 - victim]
    assert not alive(survivor)
    step = load_checkpoint(run / "checkpoints" / "last.pth")["state"]["step"]
    resumed = subprocess.run([*launch, *args[:-3], f"train.steps={step + 2}", "train.val_every=0",
                              "train.checkpoint_every=1", "--resume"], cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {step}" in resumed.stdout + resumed.stderr
    assert load_checkpoint(run / "checkpoints" / "last.pth")["state"]["step"] == step + 2


# --------------------------------------------------------------- 7. SIGTERM to every long-running command


@pytest.mark.slow
def test_sigterm_to_every_long_running_command_is_quick_clean_and_true(tiny_data_dir, demo_source, tmp_path):
    failures = []
    for what, cmd, ready, message, folder in sigterm_cases(tiny_data_dir, demo_source, tmp_path):
        status, lines, secs, temps, left = sigterm_when(cmd, ready, folder)
        problems = []
        if status != 128 + signal.SIGTERM:
            problems.append(f"exit {status}")
        if secs > 15:
            problems.append(f"{secs:.1f} s to exit")
        if temps:
            problems.append(f"temporaries left: {temps[:3]}")
        if left:
            problems.append(f"processes left: {left}")
        if not lines or not message.search(lines[-1]) or any("Traceback" in ln for ln in lines):
            problems.append(f"said {lines[-3:]}")
        if problems:
            failures.append(f"{what}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
