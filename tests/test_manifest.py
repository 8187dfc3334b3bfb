"""core/manifest.py: the typed manifest reads and writes the JSON earlier versions wrote, key for key and
in the same order, and the planner's changes do what they say."""
from __future__ import annotations

import json

import pytest

from vsrvfi.core.errors import DataError
from vsrvfi.core.manifest import (AddResolutions, DatasetOptions, DropSource, EndForce, PutSource, SetOptions,
                                  SourceRecord, apply_changes, load_manifest, manifest_path, save_manifest, update_manifest)

SCENE = {"clip": "a-s0000", "source": "/x/a.mp4", "index": 0, "start_frame": 0, "end_frame": 24, "start_time": 0.0,
         "end_time": 1.0, "fps": 24.0, "num_frames": 24, "split": "train", "dropped": None}
VIDEO = {"path": "/x/a.mp4", "fingerprint": "f00d", "info": {"width": 320, "height": 180, "fps": 24.0},
         "options": {"detector": "content"}, "normalized": False, "scenes": [SCENE], "cut_from": "/x/a.mp4"}
FRAMES = {"path": "/x/vimeo", "fingerprint": "beef", "info": {"width": 448, "height": 256, "fps": 24.0},
          "options": {"layout": "vimeo", "fps": 24.0}, "normalized": False,
          "scenes": [{**SCENE, "clip": "vimeo-00001-0001", "source": "/x/vimeo/sequences/00001/0001"}],
          "kind": "frames", "frames": {"vimeo-00001-0001": {"pattern": "im%d.png", "start_number": 1}}}
OPTIONS = {"codec": "h264", "crf": 18, "gop": 4, "bframes": 0, "scaler": "lanczos", "resolutions": ["720p", "540p"],
           "keep_orig": True, "orig_crf": 10}


@pytest.mark.parametrize("raw", [
    {"version": 1, "sources": {"a": VIDEO}, "options": OPTIONS, "force_pending": False},
    {"version": 1, "sources": {"vimeo90k": FRAMES}},
    {"version": 1, "sources": {"a": VIDEO, "b": {**VIDEO, "path": "/x/b.mp4"}},
     "options": {k: v for k, v in OPTIONS.items() if k != "orig_crf"} | {"keep_orig": False}},
])
def test_a_manifest_is_written_back_byte_for_byte(tmp_path, raw):
    text = json.dumps(raw, indent=2) + "\n"
    manifest_path(tmp_path).write_text(text)
    m = load_manifest(tmp_path)
    assert all(s.clip for s in m.scenes())
    save_manifest(tmp_path, m)
    assert manifest_path(tmp_path).read_text() == text


def test_changes_put_drop_options_tiers_and_force(tmp_path):
    manifest_path(tmp_path).write_text(json.dumps({"version": 1, "sources": {"a": VIDEO}}))
    opts = DatasetOptions(**OPTIONS)
    m = update_manifest(tmp_path, lambda m: apply_changes(m, [SetOptions(opts, True), DropSource("a")]))
    assert m.sources == {} and m.force_pending and load_manifest(tmp_path).options == opts
    rec = SourceRecord.from_dict(FRAMES)
    m = update_manifest(tmp_path, lambda m: apply_changes(m, [PutSource("v", rec), AddResolutions(("1080p", "360p")),
                                                              EndForce()]))
    again = load_manifest(tmp_path)
    assert again.sources["v"].is_frames and again.sources["v"].frames["vimeo-00001-0001"].pattern == "im%d.png"
    assert again.options.resolutions == ["1080p", "720p", "540p", "360p"] and again.force_pending is None
    with pytest.raises(TypeError):
        apply_changes(again, ["not a change"])


def test_a_foreign_or_corrupt_manifest_is_one_line(tmp_path):
    manifest_path(tmp_path).write_text("{not json")
    with pytest.raises(DataError, match="corrupt manifest"):
        load_manifest(tmp_path)
    manifest_path(tmp_path).write_text(json.dumps({"version": 1, "sources": {"a": {"path": "/x"}}}))
    with pytest.raises(DataError, match="not a manifest of this project"):
        load_manifest(tmp_path)
