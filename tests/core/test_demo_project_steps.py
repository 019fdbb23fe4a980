"""The demo project written one scene at a time (the first start's progress), a stop half-way
that the next start repairs, and which masks still hold the demo's own labels."""

from __future__ import annotations

import os

import numpy as np
import pytest

import core
from core.data.synthetic import demo_project_steps
from core.jobs import demo_model

SMALL = {"n_train": 4, "n_val": 2, "size": (32, 32), "seed": 3}


def test_steps_count_the_scenes_and_write_the_same_project(tmp_path):
    steps = demo_project_steps(tmp_path / "a", **SMALL)
    done = []
    while True:
        try:
            done.append(next(steps))
        except StopIteration as stop:
            root = stop.value
            break
    assert done == [1, 2, 3, 4, 5, 6] and root == tmp_path / "a"
    other = core.write_demo_project(tmp_path / "b", **SMALL)
    for name in ("scene_0000", "scene_0005"):
        np.testing.assert_array_equal(core.read_image(root / "images" / f"{name}.png"),
                                      core.read_image(other / "images" / f"{name}.png"))


def test_ensure_reports_each_scene_and_a_stopped_demo_is_written_again(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_model, "DEMO_PROJECT_PARAMS", SMALL)
    root = tmp_path / "demo"
    seen = []
    flag = {"stop": False}

    def on_item(rec: core.Progress) -> None:
        seen.append(rec)
        if rec.fraction and rec.fraction >= 0.5:
            flag["stop"] = True  # the window closes half-way through the first start

    with pytest.raises(core.Cancelled):
        core.run_to_end(core.ensure_demo_project(root, cancel=lambda: flag["stop"]), on_item)
    assert [r.message for r in seen][1:] == ["writing demo scene 1 of 6", "writing demo scene 2 of 6",
                                             "writing demo scene 3 of 6"]
    assert not (root / "classes.json").exists()  # not a whole project: the next start writes it again
    seen.clear()
    assert core.run_to_end(core.ensure_demo_project(root), seen.append) == root
    assert [r.fraction for r in seen] == [0.0] + [i / 6 for i in range(1, 7)]
    assert len(list((root / "images").glob("*.png"))) == 6 and (root / "classes.json").is_file()
    seen.clear()
    assert core.run_to_end(core.ensure_demo_project(root), seen.append) == root
    assert seen == []  # there already: nothing to report


def test_demo_labels_are_the_masks_nobody_saved_since(tmp_path):
    root = core.write_demo_project(tmp_path / "demo", **SMALL)
    names = {f"scene_{i:04d}" for i in range(6)}
    assert core.demo_labels(root) == names
    # a correction saved later (a newer file) is the user's, not the demo's
    mask = core.read_mask(root / "masks" / "scene_0002.png", core.SYNTHETIC_CLASSES)
    path = root / "masks" / "scene_0002.png"
    core.write_mask(path, mask, core.SYNTHETIC_CLASSES)
    marker = (root / "synthetic.json").stat().st_mtime_ns
    os.utime(path, ns=(marker + 10**9, marker + 10**9))  # saved a second later, whatever the clock's grain
    assert core.demo_labels(root) == names - {"scene_0002"}
    # not a demo project: no demo labels
    project = core.Project.create(tmp_path / "mine", core.SYNTHETIC_CLASSES)
    assert core.demo_labels(project.root) == set()
    assert core.demo_labels(tmp_path / "missing") == set()
