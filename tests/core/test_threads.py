"""The torch thread settings the app and the command line use (core.recommended_threads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import core
from core.threads import (ENV, WAIT_POLICY, ThreadSettingError, apply_thread_settings, available_cores,
                          passive_waiting, prefer_passive_waiting, recommended_threads)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(WAIT_POLICY, raising=False)
    return monkeypatch


@pytest.mark.parametrize("cores, app, cli", [(1, 1, 1), (2, 1, 2), (4, 3, 4), (16, 15, 16)])
def test_with_spinning_threads_the_app_leaves_one_core_to_the_gui_and_the_cli_uses_all(clean_env, cores, app, cli):
    assert recommended_threads(interactive=True, cores=cores) == app
    assert recommended_threads(interactive=False, cores=cores) == cli


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
def test_with_passive_waiting_the_app_uses_every_core(clean_env, cores):
    assert recommended_threads(interactive=True, cores=cores, passive=True) == cores
    clean_env.setenv(WAIT_POLICY, "passive")
    assert passive_waiting() and recommended_threads(interactive=True, cores=cores) == cores
    clean_env.setenv(WAIT_POLICY, "ACTIVE")  # the user's choice: spinning threads, a core left to the GUI
    assert not passive_waiting() and recommended_threads(interactive=True, cores=cores) == max(1, cores - 1)


def test_passive_waiting_is_asked_for_only_before_torch_and_never_over_the_users_choice(clean_env):
    assert "torch" in sys.modules  # this test process: too late to change OpenMP's policy
    assert prefer_passive_waiting() is False and WAIT_POLICY not in os.environ
    clean_env.setenv(WAIT_POLICY, "PASSIVE")
    assert prefer_passive_waiting() is True
    code = ("import os, core.threads as t; r = t.prefer_passive_waiting(); import torch; "
            "print(r, os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != WAIT_POLICY}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.split() == ["True", "PASSIVE"]
    env[WAIT_POLICY] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "ACTIVE"]


def test_the_default_counts_the_cores_this_process_may_use(clean_env):
    n = available_cores()
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))
    assert recommended_threads(interactive=False) == n
    assert recommended_threads(interactive=True) == max(1, n - 1)  # OMP_WAIT_POLICY unset: threads spin


def test_the_environment_wins(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert recommended_threads(interactive=True, cores=2) == 3
    clean_env.setenv(ENV, "5")  # ours before OpenMP's
    assert recommended_threads(interactive=False, cores=2) == 5


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_setting_is_a_clear_error(clean_env, value):
    clean_env.setenv(ENV, value)
    with pytest.raises(ThreadSettingError, match=f"{ENV}='{value}'.*positive whole number"):
        recommended_threads(interactive=True)
    assert issubclass(ThreadSettingError, core.StudioError)


def test_apply_sets_torch(clean_env):
    before = torch.get_num_threads()
    try:
        assert apply_thread_settings(interactive=False, threads=1) == 1
        assert torch.get_num_threads() == 1
        clean_env.setenv(ENV, "2")
        assert apply_thread_settings(interactive=True) == 2
        assert torch.get_num_threads() == 2
        with pytest.raises(ThreadSettingError):
            apply_thread_settings(interactive=True, threads=0)
    finally:
        torch.set_num_threads(before)


def test_exported_from_core():
    assert core.recommended_threads is recommended_threads
    assert core.apply_thread_settings is apply_thread_settings
