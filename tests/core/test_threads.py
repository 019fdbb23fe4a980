"""The torch thread settings the app and the command line use (core.recommended_threads)."""

from __future__ import annotations

import os

import pytest
import torch

import core
from core.threads import ENV, ThreadSettingError, apply_thread_settings, available_cores, recommended_threads


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return monkeypatch


@pytest.mark.parametrize("cores, app, cli", [(1, 1, 1), (2, 1, 2), (4, 3, 4), (16, 15, 16)])
def test_the_app_leaves_one_core_to_the_gui_and_the_cli_uses_all(clean_env, cores, app, cli):
    assert recommended_threads(interactive=True, cores=cores) == app
    assert recommended_threads(interactive=False, cores=cores) == cli


def test_the_default_counts_the_cores_this_process_may_use(clean_env):
    n = available_cores()
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))
    assert recommended_threads(interactive=False) == n
    assert recommended_threads(interactive=True) == max(1, n - 1)


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
