"""Official checkpoints on the standard test sets: this project's `vsr-evaluate --benchmark` beside the
published numbers. Fills the tables of docs/benchmarks.md ("Scoring on the standard test sets").

    python -m benchmarks.standard_sets --sets /data/sets --checkpoints /data/official --precision fp32
    python -m benchmarks.standard_sets --dry-run          # tiny generated sets, random weights: the path only

--sets holds each set as distributed, in these folders (any can be absent): Vid4/ (GT, BIx4), REDS/
(train_sharp, train_sharp_bicubic), vimeo_septuplet/ (sequences, sep_testlist.txt, BIx4 or
vimeo_septuplet_matlabLRx4 beside it), vimeo_triplet/ (sequences, tri_testlist.txt), ucf101_interp_ours/,
SNU-FILM/ (test-*.txt), middlebury/ (other-data, other-gt-interp). --checkpoints holds the official files
under their released names (BasicSR EDVR_*_official-*.pth, RIFE flownet.pkl, IFRNet_{,L_,S_}Vimeo90K.pth).
Every (checkpoint, set) pair whose files are present runs as the user's command would (a subprocess of
vsr-evaluate); the others are listed as not run, with what was missing. Prints a markdown table, writes
JSON.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from vsrvfi.core.atomic import atomic_path
from vsrvfi.core.cli import ArgumentParser, entry_point
from vsrvfi.inference import protocols

SNU = tuple(f"snu-film-{lv}" for lv in ("easy", "medium", "hard", "extreme"))
SET_DIRS = {"vid4": "Vid4", "reds4": "REDS", "vimeo90k-t": "vimeo_septuplet", "vimeo90k": "vimeo_triplet",
            "ucf101": "ucf101_interp_ours", **{s: "SNU-FILM" for s in SNU}, "middlebury-other": "middlebury"}
# (released file name pattern, model, size, sets it is published on / meant for)
OFFICIAL = (
    ("EDVR_L_x4_SR_REDS_official-*.pth", "edvr", "l", ("reds4",)),
    ("EDVR_M_x4_SR_REDS_official-*.pth", "edvr", "m", ("reds4",)),
    ("EDVR_L_x4_SR_Vimeo90K_official-*.pth", "edvr", "l", ("vid4", "vimeo90k-t")),
    ("flownet.pkl", "rife", "base", ("vimeo90k", "ucf101", "middlebury-other")),
    ("IFRNet_Vimeo90K.pth", "ifrnet", "base", ("vimeo90k", "ucf101", *SNU, "middlebury-other")),
    ("IFRNet_L_Vimeo90K.pth", "ifrnet", "large", ("vimeo90k", "ucf101", *SNU, "middlebury-other")),
    ("IFRNet_S_Vimeo90K.pth", "ifrnet", "small", ("vimeo90k", "ucf101", *SNU, "middlebury-other")),
)


def plan(sets: Path, ckpts: Path) -> tuple[list[dict], list[str]]:
    """The runs whose checkpoint and set are both present, and one line per pair that is not."""
    runs, missing = [], []
    for pattern, model, size, names in OFFICIAL:
        found = sorted(ckpts.glob(pattern)) if ckpts.is_dir() else []
        for name in names:
            root = sets / SET_DIRS[name]
            if not found:
                missing.append(f"{model}-{size} on {name}: no {pattern} in {ckpts}")
            elif not root.is_dir():
                missing.append(f"{model}-{size} on {name}: no {root}")
            else:
                runs.append({"checkpoint": str(found[0]), "model": model, "size": size, "benchmark": name, "root": str(root)})
    return runs, missing


def run_one(run: dict, precision: str, device: str, out: Path, extra: Sequence[str] = ()) -> dict:
    """One vsr-evaluate --benchmark call; its scores.json with the command and the seconds it took."""
    cmd = [sys.executable, "-m", "vsrvfi.tools.evaluate", "-c", run["checkpoint"], "--model", run["model"],
           "--size", run["size"], "--benchmark", run["benchmark"], run["root"], "--precision", precision,
           "--device", device, "--out", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    row = {**run, "precision": precision, "command": " ".join(cmd[1:]), "seconds": time.perf_counter() - t0}
    if proc.returncode:
        return {**row, "error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1]}
    scores = json.loads((out / run["benchmark"] / "scores.json").read_text())
    return {**row, "frames": scores["frames_scored"], "set": scores["set"], "published": scores["published"]}


def table(rows: list[dict]) -> str:
    lines = ["| set | model | convention | published PSNR (SSIM / IE) | this project | difference | precision | frames |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['benchmark']} | {r['model']}-{r['size']} | - | - | failed: {r['error']} | | | |")
            continue
        for label, m in r["set"].items():
            pub = r["published"].get(label)
            key = "ie" if pub and pub.get("psnr") is None and pub.get("ie") is not None else "psnr"
            ours = f"{m[key]:.3f}" + (f" ({m['ssim']:.4f})" if key == "psnr" else " IE")
            pub_txt = "-" if not pub else (f"{pub[key]:.3f}" + (f" ({pub['ssim']:.4f})" if key == "psnr" and pub.get("ssim")
                                                               else " IE" if key == "ie" else ""))
            diff = f"{m[key] - pub[key]:+.3f}" if pub else ""
            lines.append(f"| {r['benchmark']} | {r['model']}-{r['size']} | {label} | {pub_txt} | {ours} | {diff} | "
                         f"{r['precision']} | {r['frames']} |")
    return "\n".join(lines)


def dry_run_inputs(tmp: Path) -> tuple[Path, Path]:
    """Tiny generated sets (benchmarks/fixtures/benchfactory.py) and random-weight checkpoints under official names."""
    import torch

    from benchmarks.fixtures import benchfactory
    from vsrvfi.models.registry import build_model

    sets, ckpts = tmp / "sets", tmp / "ckpts"
    ckpts.mkdir(parents=True)
    for name, make in benchfactory.MAKERS.items():
        make(sets / {"snu-film": "SNU-FILM", **SET_DIRS}.get(name, name))
    torch.manual_seed(0)
    torch.save({"module." + k: v for k, v in build_model("rife").state_dict().items()}, ckpts / "flownet.pkl")
    torch.save(build_model("ifrnet", "small").state_dict(), ckpts / "IFRNet_S_Vimeo90K.pth")
    return sets, ckpts


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=Path, help="folder with the sets as distributed (see above)")
    ap.add_argument("--checkpoints", type=Path, help="folder with the official checkpoints under their released names")
    ap.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16 (the published numbers are fp32)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/standard_sets.json"))
    ap.add_argument("--dry-run", action="store_true", help="tiny generated sets and random weights (the path only)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if a.dry_run:
            a.sets, a.checkpoints = dry_run_inputs(Path(tmp))
        elif a.sets is None or a.checkpoints is None:
            ap.error("give --sets and --checkpoints (or --dry-run)")
        runs, missing = plan(a.sets, a.checkpoints)
        extra = ("--subset", "2") if a.dry_run else ()  # the dry run checks the path, not the numbers
        rows = [run_one(r, a.precision, a.device, Path(tmp) / "eval" / f"{r['model']}-{r['size']}", extra)
                for r in runs]
    print(table(rows))
    for m in missing:
        print(f"not run: {m}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(a.out) as tmp_out:
        tmp_out.write_text(json.dumps({"dry_run": a.dry_run, "rows": rows, "not_run": missing,
                                       "protocols": list(protocols.PROTOCOLS)}, indent=1))
    print(f"wrote {a.out}")
    return 1 if any("error" in r for r in rows) else 0


cli = entry_point(main, interrupted="nothing was written; a rerun runs every pair again")

if __name__ == "__main__":
    raise SystemExit(cli())
