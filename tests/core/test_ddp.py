"""Several processes: ``torchrun --nproc_per_node=2`` on the CPU (gloo) with a tiny model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_train_one_model(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(WORKER), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    # one model: identical weights and BatchNorm statistics on both ranks (rank 1 started elsewhere)
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert logs[0]["world_size"] == 2 and logs[0]["steps_done"] == logs[1]["steps_done"] == 4

    # only rank 0 yields and writes; validation is reduced over both ranks' shares
    steps = [r[0] for r in logs[0]["records"]]
    assert steps == [1, 2, 2, 3, 4, 4] and logs[1]["records"] == []
    assert logs[0]["miou"] == logs[1]["miou"] == logs[0]["records"][-1][2]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["final.safetensors", "last.pt"]
    assert logs[0]["checkpoint"] == str(run / "final.safetensors") and logs[1]["checkpoint"] is None
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4

    # a distributed sampler: each step's samples split between the ranks; one epoch = 2 steps = 8 images
    r0, r1 = logs[0]["read"], logs[1]["read"]
    assert len(r0) == len(r1) == 8
    assert sorted(r0[:4] + r1[:4]) == list(range(8)) and sorted(r0[4:] + r1[4:]) == list(range(8))
