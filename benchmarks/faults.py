"""Fault injection, the long form: every fault of tests/test_faults.py many times, with a table.

    python -m benchmarks.faults [--repeats N] [--seed S] [--only NAME,...] [--out docs/benchmarks/faults]

For each fault: how many were injected, how many the project recovered from, how much work was lost
beyond what the design allows (must be 0), and the worst time to recover. What counts:

- trainer kill -9: 3 kills per run at random steps, validations and checkpoint writes (reproducible
  points, benchmarks/fixtures/fault_harness.py) plus one from outside at a random moment; recovered when every
  restart resumes from the last complete checkpoint, every checkpoint file stays readable and the
  final weights, optimizer, RNG states equal an uninterrupted run's bit for bit. Lost: restarts that
  resumed from an older checkpoint than the last one written, unreadable checkpoints, a final state
  that differs. Recovery: seconds from the restart's launch to its "resumed from" line.
- ddp kill -9: one of two gloo ranks (at random) killed at a random moment; recovered when the
  launcher exits within 60 s with no traceback, naming the rank, and --resume continues. Recovery:
  seconds from the kill until the survivor is gone.
- prepare_data kill -9: killed in a random stage (split, transcode, extract) after a random delay,
  twice per repeat, then rerun; recovered when the result is byte-identical to an uninterrupted run
  (summary.json's stage timings aside). Lost: files that differ. Recovery: the rerun's wall time.
- bad clip / bad frame: a clip or PNG frame damaged (deleted, truncated, garbage, empty) at a random
  step, with on_bad_clip=skip (run finishes, clip counted) and stop (one line naming the clip, a
  checkpoint of the step reached). Lost: steps not in the stop checkpoint.
- full disk: a checkpoint write into a 1 MiB tmpfs; recovered when the old file is intact and the
  error is one line saying "no space left" (skipped where tmpfs cannot be mounted).
- two writers: a second prepare_data / training on a folder in use is refused in one line naming the
  holder; the first run is undisturbed.
- nan / explosion: NaN pixels and exploding losses at random steps; recovered when the run finishes
  with finite weights, the guard having skipped or rolled back.
- sigterm: prepare_data, the trainer, the launcher with two ranks, run.sh: exit 143 within 15 s,
  no temporary left, the tool's true message.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.fixtures import inject as tf  # the test suite's way to inject each fault
from benchmarks.fixtures.clipfactory import build_data_dir
from vsrvfi.core.cli import Interrupted, entry_point
from vsrvfi.models.checkpoint import load_checkpoint

ROOT = tf.ROOT


def _stopped(trainer) -> None:
    """An in-process trainer returns after SIGINT/SIGTERM (it saved a checkpoint); the benchmark stops too."""
    if trainer.stop_signal is not None:
        raise Interrupted(trainer.stop_signal)


def _kill_children() -> None:
    """Stop every process this benchmark started (a signal must not leave trainings running)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's DataLoader handler would raise for its killed workers
    family, todo = [], [os.getpid()]
    while todo:
        kids = tf.children(todo.pop())
        family += kids
        todo += kids
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Tally:
    def __init__(self, name: str):
        self.name, self.injected, self.recovered, self.lost, self.worst = name, 0, 0, 0, 0.0
        self.notes: list[str] = []

    def add(self, ok: bool, lost: int = 0, secs: float = 0.0, note: str = "") -> None:
        self.injected += 1
        self.recovered += bool(ok)
        self.lost += lost
        self.worst = max(self.worst, secs)
        if not ok and note:
            self.notes.append(note)

    def row(self) -> dict:
        return {"fault": self.name, "injected": self.injected, "recovered": self.recovered, "data_lost": self.lost,
                "worst_recovery_s": round(self.worst, 1), "notes": self.notes[:3]}


def _resume_seconds(args: list[str], fault: str = "none:0") -> tuple[subprocess.CompletedProcess, float]:
    """Run a resumed training; seconds until its 'resumed from' line."""
    cmd = [sys.executable, str(tf.HARNESS), fault, "--", *args, "--resume"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=tf.ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = None
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        out.append(line)
        if seen is None and "resumed from" in line:
            seen = time.monotonic() - t0
    err = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(out), err), seen or (time.monotonic() - t0)


def trainer_kill9(data: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    common = ["train.steps=12", "train.val_every=4", "train.checkpoint_every=2"]
    ref = tf.run_train("none:0", tf.train_args(data, work, "ref", *common))
    assert ref.returncode == 0, ref.stderr[-2000:]
    reference = load_checkpoint(work / "ref" / "checkpoints" / "last.pth")
    for r in range(repeats):
        name = f"cut{r}"
        args = tf.train_args(data, work, name, *common)
        ckdir = work / name / "checkpoints"
        faults = [rng.choice([f"step:{rng.randint(1, 12)}", f"val:{rng.randint(1, 2)}", f"save:{rng.randint(1, 4)}"])
                  for _ in range(3)] + ["outside"]
        lost = 0
        first = True
        injected = 0
        for fault in faults:
            last = ckdir / "last.pth"
            before = load_checkpoint(last)["state"]["step"] if last.exists() else None
            if fault == "outside":  # kill -9 from outside at a random moment of a resumed run
                cmd = [sys.executable, str(tf.HARNESS), "none:0", "--", *args, *([] if first else ["--resume"])]
                proc = subprocess.Popen(cmd, cwd=ROOT, env=tf.ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(3, 12))
                proc.kill()
                proc.wait()
                status = proc.returncode
            elif first:
                status = tf.run_train(fault, args).returncode
            else:
                res, secs = _resume_seconds(args, fault)
                status = res.returncode
                t.worst = max(t.worst, secs)
            first = False
            ok = True
            for p in tf.checkpoint_files(work / name):
                try:
                    load_checkpoint(p)
                except Exception:
                    ok, lost = False, lost + 1
            if status == 0:
                continue  # the run finished before reaching that point: nothing was injected
            injected += 1
            t.add(ok and status == -signal.SIGKILL, note=f"{fault}: status {status}")
            after = load_checkpoint(last)["state"]["step"] if last.exists() else None
            if before is not None and (after is None or after < before):
                lost += 1  # a complete checkpoint went backwards
        final, secs = _resume_seconds(args)
        t.worst = max(t.worst, secs)
        same = final.returncode == 0
        if same:
            try:
                tf.assert_same_state(reference, load_checkpoint(ckdir / "last.pth"))
            except AssertionError as exc:
                same, lost = False, lost + 1
                t.notes.append(f"repeat {r} ({', '.join(faults)}): {str(exc)[:200]}")
        if not same or lost:
            t.recovered -= injected  # the run as a whole did not recover
        t.lost += lost
        shutil.rmtree(work / name, ignore_errors=True)


def ddp_kill9(data: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    launch = [sys.executable, "-m", "vsrvfi.trainers.launch", "--standalone", "--nproc_per_node=2", "-m",
              "vsrvfi.trainers.train"]
    for r in range(repeats):
        name = f"ddp{r}"
        args = tf.train_args(data, work, name, "train.steps=100000", "train.val_every=0", "train.checkpoint_every=1")
        proc = subprocess.Popen([*launch, *args], cwd=ROOT, env=tf.ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        last = work / name / "checkpoints" / "last.pth"
        t0 = time.monotonic()
        while not last.exists() and proc.poll() is None and time.monotonic() - t0 < 180:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 3))
        victim = rng.randint(0, 1)
        pids = tf.rank_pids(proc.pid)
        os.kill(pids[victim], signal.SIGKILL)
        t1 = time.monotonic()
        try:
            err = proc.communicate(timeout=120)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        secs = time.monotonic() - t1
        ok = secs < 60 and "Traceback" not in err and f"error: rank {victim}: was stopped by SIGKILL" in err
        step = load_checkpoint(last)["state"]["step"]
        res = subprocess.run([*launch, *args[:-3], f"train.steps={step + 2}", "train.val_every=0",
                              "train.checkpoint_every=1", "--resume"], cwd=ROOT, env=tf.ENV, capture_output=True,
                             text=True, timeout=300)
        resumed = res.returncode == 0 and load_checkpoint(last)["state"]["step"] == step + 2
        t.add(ok and resumed, lost=0 if resumed else 1, secs=secs, note=f"rank {victim}: {err[-300:]}")
        shutil.rmtree(work / name, ignore_errors=True)


def prepare_kill9(source: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    tf.prepare(source, work / "prep-ref")
    reference = tf.tree(work / "prep-ref")
    for r in range(repeats):
        data = work / f"prep{r}"
        kills = 0
        for _ in range(2):
            stage = rng.choice(list(tf.STAGES))
            delay = rng.uniform(0, 0.3)
            seen: list[float] = []

            def when(d, cond=tf.STAGES[stage], delay=delay, seen=seen):
                if not seen and cond(d):
                    seen.append(time.monotonic())
                return bool(seen) and time.monotonic() - seen[0] >= delay

            status, _ = tf.prepare(source, data, when)
            kills += status == -signal.SIGKILL
        t0 = time.monotonic()
        tf.prepare(source, data)
        secs = time.monotonic() - t0
        got = tf.tree(data)
        differ = sorted(set(got) ^ set(reference)) + [k for k in reference if k in got and got[k] != reference[k]]
        for _ in range(max(kills, 1)):
            t.add(not differ, secs=secs, note=f"differs: {differ[:3]}")
        t.lost += len(differ)
        shutil.rmtree(data, ignore_errors=True)


def bad_clips(data: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    from vsrvfi.pipelines import BadClip

    for r in range(repeats):
        own = Path(shutil.copytree(data, work / f"bad{r}"))
        loader = rng.choice(["png", "dali"])
        mode = rng.choice(["stop", "skip"])
        how = rng.choice(["deleted", "truncated", "garbage", "empty"])
        clip = rng.choice(["tiny-s0000", "tiny-s0001", "tiny-s0002"])
        path = own / "144p" / ("frames" if loader == "png" else "scenes") / "train" / (
            clip if loader == "png" else f"{clip}.mp4")
        at = rng.randint(0, 4)
        extra = [f"data.loader={loader}", "data.device=cpu", f"data.on_bad_clip={mode}", "train.steps=40"]
        trainer = tf.in_process_trainer(own, work / f"badrun{r}", *extra,
                                        task_wrapper=lambda task: tf.DamageAt(task, at, path, how))
        t0 = time.monotonic()
        try:
            state = trainer.fit()
            _stopped(trainer)
            ok = state.step == 40 and state.bad_clips == [clip] and mode == "skip"
            lost = 0
            note = f"{loader}/{mode}/{how}: finished with bad_clips={state.bad_clips}"
        except BadClip as exc:
            msg = str(exc)
            ckpt = load_checkpoint(work / f"badrun{r}" / "checkpoints" / "last.pth")
            lost = trainer.state.step - ckpt["state"]["step"]
            ok = mode == "stop" and clip in msg and "\n" not in msg and lost == 0
            note = f"{loader}/{mode}/{how}: {msg[:200]}"
        finally:
            trainer.close()
        t.add(ok, lost=lost, secs=time.monotonic() - t0, note=note)
        shutil.rmtree(own, ignore_errors=True)
        shutil.rmtree(work / f"badrun{r}", ignore_errors=True)


def full_disk(work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    import torch

    from vsrvfi.core.errors import PathError
    from vsrvfi.models.checkpoint import save_checkpoint

    mnt = work / "disk"
    mnt.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        t.notes.append("skipped: cannot mount a tmpfs here")
        return
    try:
        for r in range(repeats):
            path = mnt / "checkpoints" / "last.pth"
            save_checkpoint({"step": r, "w": torch.zeros(rng.randint(10, 1000))}, path)
            before = path.read_bytes()
            t0 = time.monotonic()
            try:
                save_checkpoint({"w": torch.zeros(rng.randint(300_000, 3_000_000))}, path)
                ok = False
            except PathError as exc:
                ok = "no space left" in str(exc) and "\n" not in str(exc)
            intact = path.read_bytes() == before and not tf.temp_files(mnt)
            t.add(ok and intact, lost=0 if intact else 1, secs=time.monotonic() - t0)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def two_writers(data: Path, source: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    from vsrvfi.core.errors import UsageError
    from vsrvfi.core.lock import FolderLock

    for r in range(repeats):
        folder = work / f"locked{r}"
        holder = subprocess.Popen([sys.executable, "-c", "import time; from vsrvfi.core.lock import FolderLock; "
                                   f"l = FolderLock({str(folder)!r}).acquire(); print('held', flush=True); "
                                   "time.sleep(600)"], cwd=ROOT, env=tf.ENV, stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
        cmds = [[sys.executable, "-m", "vsrvfi.tools.prepare_data", str(source), str(folder), *tf.PREPARE],
                [sys.executable, "-m", "vsrvfi.trainers.train",
                 *tf.train_args(data, folder.parent, folder.name, "train.steps=2"), "--resume"]]
        cmd = rng.choice(cmds)
        t0 = time.monotonic()
        res = subprocess.run(cmd, cwd=ROOT, env=tf.ENV, capture_output=True, text=True, timeout=120)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        ok = res.returncode == 2 and len(lines) == 1 and f"in use by process {holder.pid}" in lines[0]
        holder.kill()
        holder.wait()
        try:
            FolderLock(folder).acquire().release()  # freed by the kill
        except UsageError:
            ok = False
        t.add(ok, secs=time.monotonic() - t0, note=" ".join(lines)[:200])
        shutil.rmtree(folder, ignore_errors=True)


def nonfinite(data: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    import torch

    for r in range(repeats):
        nan = set(rng.sample(range(1, 12), rng.randint(1, 4)))
        boom = set(rng.sample(range(1, 12), rng.randint(0, 3)))
        trainer = tf.in_process_trainer(data, work / f"nan{r}", "train.steps=12", "train.checkpoint_every=2",
                                        task_wrapper=lambda task: tf.Poison(task, nan, boom))
        t0 = time.monotonic()
        state = trainer.fit()
        trainer.close()
        _stopped(trainer)
        ok = (state.step == 12 and all(torch.isfinite(p).all() for p in trainer.model.parameters())
              and all(torch.isfinite(b).all() for b in trainer.model.buffers())
              and math.isfinite(state.best_psnr) and trainer.guard.skipped_total >= 1)
        t.add(ok, secs=time.monotonic() - t0, note=f"nan {sorted(nan)} boom {sorted(boom)}")
        shutil.rmtree(work / f"nan{r}", ignore_errors=True)


def sigterm(data: Path, source: Path, work: Path, rng: random.Random, repeats: int, t: Tally) -> None:
    for r in range(repeats):
        for what, cmd, ready, message, folder in tf.sigterm_cases(data, source, work / f"term{r}"):
            if what == "benchmarks.faults":
                continue  # itself
            status, lines, secs, temps, left = tf.sigterm_when(cmd, ready, folder, settle=rng.uniform(0, 1))
            ok = (status == 128 + signal.SIGTERM and secs < 15 and not temps and not left and bool(lines)
                  and bool(message.search(lines[-1])))
            t.add(ok, secs=secs, note=f"{what}: status {status}, {secs:.1f} s, {lines[-2:]}, temps {temps[:2]}")
        shutil.rmtree(work / f"term{r}", ignore_errors=True)


FAULTS = ("trainer-kill9", "ddp-kill9", "prepare-kill9", "bad-clip", "full-disk", "two-writers", "nonfinite",
          "sigterm")


def format_table(rows: list[dict]) -> str:
    head = f"| {'fault':<14} | {'injected':>8} | {'recovered':>9} | {'data lost':>9} | {'worst recovery s':>16} |"
    out = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        out.append(f"| {r['fault']:<14} | {r['injected']:>8} | {r['recovered']:>9} | {r['data_lost']:>9} | "
                   f"{r['worst_recovery_s']:>16.1f} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each fault (more kills per repeat for some)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    ap.add_argument("--only", default=",".join(FAULTS), help="comma list of " + ", ".join(FAULTS))
    ap.add_argument("--out", default=None, help="write the rows as JSON to this path")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    only = [f.strip() for f in a.only.split(",") if f.strip()]
    work = Path(tempfile.mkdtemp(prefix="vsr-faults-"))
    rows = []
    try:
        from vsrvfi.tools.demo_video import make_demo_video

        data = build_data_dir(work / "data")
        source = make_demo_video(work / "src" / "demo.mp4", 320, 180, fps=24, scene_seconds=1.0, scenes=4,
                                 progress=False)
        jobs: dict[str, Callable[[Tally], None]] = {
            "trainer-kill9": lambda t: trainer_kill9(data, work, rng, a.repeats, t),
            "ddp-kill9": lambda t: ddp_kill9(data, work, rng, a.repeats, t),
            "prepare-kill9": lambda t: prepare_kill9(source, work, rng, a.repeats, t),
            "bad-clip": lambda t: bad_clips(data, work, rng, a.repeats * 2, t),
            "full-disk": lambda t: full_disk(work, rng, a.repeats * 3, t),
            "two-writers": lambda t: two_writers(data, source, work, rng, a.repeats, t),
            "nonfinite": lambda t: nonfinite(data, work, rng, a.repeats, t),
            "sigterm": lambda t: sigterm(data, source, work, rng, a.repeats, t),
        }
        for name in only:
            t = Tally(name)
            t0 = time.monotonic()
            jobs[name](t)
            rows.append(t.row())
            print(f"{name}: {t.injected} injected, {t.recovered} recovered, {t.lost} lost "
                  f"({time.monotonic() - t0:.0f} s){'; ' + ' | '.join(t.notes[:3]) if t.notes else ''}", flush=True)
    finally:
        _kill_children()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(format_table(rows))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"repeats": a.repeats, "seed": a.seed, "rows": rows}, indent=2) + "\n")
    return 0 if all(r["recovered"] == r["injected"] and r["data_lost"] == 0 for r in rows) else 1


cli = entry_point(main, interrupted="stopped; its work folder was removed")

if __name__ == "__main__":
    raise SystemExit(cli())
