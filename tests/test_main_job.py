"""The main job in CI: `spacy project run all` on the demo data from all-MiniLM-L6-v2, with small
step counts; the wheel it builds installs into a fresh venv and loads offline with the same
outputs as the trained pipeline had in the workflow's own report."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = ("corpus", "models", "training", "metrics", "packages", "project.lock", "*.spacy", "__pycache__")


def test_all_workflow_and_its_wheel_load_offline(minilm, wheel_venv, tmp_path):
    shutil.copytree(REPO / "project", tmp_path / "project", ignore=shutil.ignore_patterns(*OUTPUTS))
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    project = tmp_path / "project"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    small = ["--vars.pretrain_steps", "3", "--vars.pretrain_head_warmup", "2", "--vars.train_steps", "4",
             "--vars.score_docs", "5"]
    proc = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "all", ".", *small], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # It started from MiniLM (its 30,522-entry vocabulary), pretrained, trained, evaluated, reported.
    assert json.loads((project / "models" / "base" / "config.json").read_text())["vocab_size"] == 30522
    # The dapt recipe: 2 head-only steps (MiniLM ships no MLM head), then 3 of the whole model.
    log = [json.loads(line) for line in (project / "models/pretrained/metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 5 and [m["lr"] for m in log if "loss" in m][:1] == [0.002]
    ner = json.loads((project / "metrics" / "ner.json").read_text())
    textcat = json.loads((project / "metrics" / "textcat.json").read_text())
    assert 0.0 <= ner["ents_f"] <= 1.0 and 0.0 <= textcat["cats_micro_f"] <= 1.0
    assert json.loads((project / "metrics" / "pppl.json").read_text())["pseudo_perplexity"] > 1.0
    # configs/full.cfg without --paths.train_pairs: trf_similarity pools but gets no loss.
    performance = json.loads((project / "training" / "full" / "model-last" / "meta.json").read_text())["performance"]
    assert performance["similarity_loss"] == 0.0 and performance["ner_loss"] > 0
    assert "The pipeline on new sentences" in proc.stdout and "fill_mask top-5" in proc.stdout
    shown = json.loads((project / "metrics" / "showcase.json").read_text())
    assert all(len(preds) == 5 for preds in shown["fill_mask"].values())
    # The wheel, installed in a fresh venv without spacy-mlm's sources, offline: same outputs.
    (wheel,) = project.glob("packages/*/dist/*.whl")
    run([wheel_venv.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    script = (
        "import json, sys\n"
        "sys.path.insert(0, %r)\n"
        "import spacy\n"
        "from report import showcase\n"
        "nlp = spacy.load('en_mlm_demo')\n"
        "assert '/site-packages/en_mlm_demo/' in str(nlp.path), nlp.path\n"
        "print(json.dumps(showcase(nlp)))\n"
    ) % str(project / "scripts")
    # Same outputs up to the last printed digit: scores are rounded to 4 places, and a value on a
    # rounding boundary can flip between two processes whose float sums differ in the last bit.
    assert json.loads(run([wheel_venv.python, "-c", script], cwd=str(tmp_path))) == approx_tree(shown)


def approx_tree(value):
    """`value` with every float as pytest.approx(abs=2e-4): equal labels, texts and order, scores
    within one unit of their 4th decimal."""
    if isinstance(value, float):
        return pytest.approx(value, abs=2e-4)
    if isinstance(value, dict):
        return {k: approx_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx_tree(v) for v in value]
    return value
