"""The label-efficiency benchmark's smoke case (``tests/benchmarks/label_efficiency.py --quick``):
a simulated annotator corrects the regions the app's ranking picks, through LabelMask, in a real
project, fine-tuned by core.finetune_project. On a case built to favour a ranking that works (a
budget small against the pool) the ranking must find far more of the model's errors than random
regions and end ahead; the same check must fail when the ranking is replaced by random order."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import core

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import label_efficiency as le  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    args = le.parse(["--quick", "--jobs", "1"])
    le.prepare(args, str(tmp_path_factory.mktemp("label-efficiency")))
    return args


@pytest.fixture(scope="module")
def random_run(quick) -> le.Run:
    return le.run_one("random", 0, quick)


def checks(*runs: le.Run) -> list[tuple[str, bool]]:
    return le.summary(le.curves(list(runs)), quick=True)["checks"]


def test_quick_case_the_ranking_finds_the_errors_and_ends_ahead(quick, random_run):
    run = le.run_one("ranking", 0, quick)
    rounds = run.rounds
    assert len(rounds) == quick.rounds + 1 and rounds[0].pixels == 0
    for prev, r in zip(rounds, rounds[1:]):  # every round corrected its budget (at most one region over)
        assert quick.budget <= r.new < quick.budget + 32 * 32 and r.pixels == prev.pixels + r.new
        assert 0 <= r.wrong <= r.new and r.regions >= 1 and 0.0 <= r.miou <= 1.0
    assert random_run.rounds[0].miou == rounds[0].miou  # the same starting model and held-out scenes
    result = checks(run, random_run)
    assert len(result) == 2 and all(ok for _, ok in result), result


def test_quick_check_fails_when_the_ranking_is_replaced_by_random_order(quick, random_run, monkeypatch):
    real = core.rank_regions

    def shuffled(regions, rule=core.DEFAULT_RULE, limit=None):
        order = real(regions, rule)
        order = [order[i] for i in np.random.default_rng(7).permutation(len(order))]
        return order if limit is None else order[:limit]

    monkeypatch.setattr(core, "rank_regions", shuffled)
    run = le.run_one("ranking", 0, quick)
    result = checks(run, random_run)
    assert not result[0][1], result  # the errors found are those of chance
