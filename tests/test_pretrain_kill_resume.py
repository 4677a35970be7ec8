"""SIGKILL `spacy-mlm pretrain` at random (seeded) moments, many inside checkpoint writes; every
--resume must start from the newest complete checkpoint and the result must equal an
uninterrupted run. More kills: `python -m bench pretrain kill-resume --kills 50`, which runs
test_sigkill_and_resume_equals_uninterrupted with the SPACY_MLM_TEST_KILL* variables below."""

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spacy_mlm.pretrain.checkpoint import latest_checkpoint
from spacy_mlm.pretrain.loop import pretrain

from .kill_harness import PAUSE, run_kill_chain
from .pretrain_fixtures import CONFIG, overrides, stopped_run

pytest_plugins = ["tests.pretrain_fixtures"]

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


KILLS = int(os.environ.get("SPACY_MLM_TEST_KILLS", 6))  # 6 (seed 0) land at startup, mid-step, in a checkpoint and in the final write; 10 took 90 s of CI
SEED = int(os.environ.get("SPACY_MLM_TEST_KILL_SEED", 0))
LAUNCHER = os.environ.get("SPACY_MLM_TEST_KILL_LAUNCHER", "fork")  # or "exec": every run a new process
KILL_PAUSE = float(os.environ.get("SPACY_MLM_TEST_KILL_PAUSE", PAUSE))
VERBOSE = bool(os.environ.get("SPACY_MLM_TEST_KILL_VERBOSE"))
REPORT = os.environ.get("SPACY_MLM_TEST_KILL_REPORT")  # a JSON file for the report (`python -m bench pretrain kill-resume`)


def test_sigkill_and_resume_equals_uninterrupted(tmp_path, pt_corpus, pt_model):
    report = run_kill_chain(tmp_path, *pt_corpus, pt_model, kills=KILLS, seed=SEED, pause=KILL_PAUSE,
                            launcher=LAUNCHER, verbose=VERBOSE)
    if REPORT:
        Path(REPORT).write_text(json.dumps({"summary": report.summary(), **vars(report)}, indent=2), encoding="utf8")
    print(f"\nkill/resume: {report.summary()}; resumed from steps {report.resumed_from}")
    assert not report.problems, "\n".join(report.problems)
    assert report.tried == KILLS and report.survived == report.tried
    assert report.in_checkpoint_write >= 1  # the seam works: kills do land inside checkpoint writes
    assert report.weights_equal and report.metrics_equal


def test_resume_skips_damaged_leftovers(tmp_path, pt_corpus, pt_model):
    """What a kill (or a partial copy) can leave: a truncated newest checkpoint, a temporary
    checkpoint directory, a torn metrics line, an unreadable run.json. --resume uses the newest
    complete checkpoint, cleans up, and reaches the uninterrupted weights."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=6, training__eval_frequency=0,
                  training__checkpoint_frequency=2, training__keep_checkpoints=3, system__threads=1)
    full = pretrain(CONFIG, tmp_path / "full", o)
    out = stopped_run(tmp_path / "cut", o, after_step=5)
    ckpts = out / "checkpoints"
    newest = ckpts / "step_00000004"
    data = (newest / "trainer_state.safetensors").read_bytes()
    (newest / "trainer_state.safetensors").write_bytes(data[: len(data) // 2])  # e.g. a copy cut short
    (ckpts / ".tmp-step_00000006").mkdir()
    (ckpts / ".tmp-step_00000006" / "model.safetensors").write_bytes(b"partial")
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "lo')  # torn mid-line
    (out / "run.json").write_text('{"config": "[paths]\\ntr')  # torn (before writes were atomic)

    with pytest.warns(UserWarning, match=r"Skipping the incomplete checkpoint .*step_00000004: "
                                         r"trainer_state\.safetensors is truncated"):
        assert latest_checkpoint(out, warn=True) == ckpts / "step_00000002"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = pretrain(CONFIG, out, o, resume=True)
    assert not (ckpts / ".tmp-step_00000006").exists()
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 7))
    assert json.loads((out / "run.json").read_text())["config"].startswith("[paths]")
