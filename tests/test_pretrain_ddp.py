"""The same command under torchrun (2 CPU processes, gloo) gives the loss curve of 1 process."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .pretrain_fixtures import CONFIG, PRECISIONS, overrides

pytest_plugins = ["tests.pretrain_fixtures"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nproc, out, o):
    args = [f"--{k}={'null' if v is None else v}" for k, v in o.items()]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "spacy_mlm"]
    cmd = launcher + ["pretrain", str(CONFIG), str(out), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [m["loss"] for m in lines if "loss" in m], [m["eval_loss"] for m in lines if "eval_loss" in m]


# (loss atol, weight atol) per precision: bf16 autocast agrees to its 8 mantissa bits.
DDP_TOLERANCE = {"fp32": (1e-4, 1e-5), "bf16": (5e-3, 5e-3)}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_two_processes_match_one(tmp_path, pt_corpus, pt_model, precision):
    # Dropout off: the two runs draw dropout masks on different processes.
    o = overrides(*pt_corpus, pt_model, training__max_steps=4, training__eval_frequency=4,
                  training__grad_accum=2, model__dropout=0.0, system__threads=1, training__precision=precision)
    loss_atol, weight_atol = DDP_TOLERANCE[precision]
    one, eval_one = run(1, tmp_path / "one", o)
    two, eval_two = run(2, tmp_path / "two", o)
    assert len(one) == len(two) == 4
    for a, b in zip(one, two):
        assert abs(a - b) < loss_atol, (one, two)
    assert abs(eval_one[0] - eval_two[0]) < loss_atol
    # Same final weights, and they moved from the start (a 4-step loss curve on random masks is
    # too noisy to show learning; tests/test_pretrain_loop.py checks that on a longer run).
    start = load_file(str(pt_model / "model.safetensors"))
    w_one = load_file(str(tmp_path / "one" / "final" / "model.safetensors"))
    w_two = load_file(str(tmp_path / "two" / "final" / "model.safetensors"))
    assert w_one.keys() == w_two.keys()
    for name in w_one:
        assert torch.allclose(w_one[name], w_two[name], atol=weight_atol), name
    assert max((w_one[n] - start[n]).abs().max().item() for n in start if n in w_one) > 1e-4
