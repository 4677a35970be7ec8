"""project/project.yml: valid for weasel, workflows made of defined commands, every file a
command runs or depends on inside the repository exists, and the helper scripts work."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent / "project"


@pytest.fixture(scope="module")
def project():
    from weasel.util import load_project_config

    # Validates against weasel's schema (SystemExit on errors) and substitutes ${vars.*}.
    return load_project_config(PROJECT)


def test_workflows_use_defined_commands(project):
    names = {c["name"] for c in project["commands"]}
    assert {"all", "real", "ablation"} <= set(project["workflows"])
    for workflow, steps in project["workflows"].items():
        assert set(steps) <= names, f"{workflow}: undefined steps {set(steps) - names}"
    assert not re.search(r"\$\{vars\.", json.dumps(project["commands"])), "unresolved ${vars.*}"


def test_repository_files_referenced_exist(project):
    """Scripts, configs and assets (not outputs or shared data) must exist in the repo."""
    outputs = {o for c in project["commands"] for o in c.get("outputs", [])}
    for command in project["commands"]:
        words = [w for line in command["script"] for w in line.split()] + command.get("deps", [])
        for word in words:
            if word.startswith(("scripts/", "assets/", "../configs/", "../bench/")) and word not in outputs:
                assert (PROJECT / word).exists(), f"{command['name']}: {word} does not exist"


def test_project_document_renders():
    out = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "document", str(PROJECT)], capture_output=True, text=True, check=True
    ).stdout
    for name in ("ablation-encoders", "real-pretrain", "package"):
        assert name in out


def test_raw_text_drops_labels(tmp_path):
    textcat = tmp_path / "sents.train"
    textcat.write_text("1 a fine film .\n0 a dull one .\n", encoding="utf8")
    text = tmp_path / "wiki.txt"
    text.write_text(" = Title = \n\n Some text .\n", encoding="utf8")
    ner = tmp_path / "ner.conll"
    ner.write_text("Paris\tB-LOC\nis\tO\nnice\tO\n\nhi\tO\n", encoding="utf8")
    subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "raw_text.py"), str(tmp_path / "out"),
         "--text", str(text), "--textcat", str(textcat), "--ner", str(ner)], check=True, capture_output=True,
    )
    assert (tmp_path / "out" / "ner.conll.txt").read_text(encoding="utf8") == "Paris is nice\nhi\n"
    assert (tmp_path / "out" / "sents.train.txt").read_text(encoding="utf8") == "a fine film .\na dull one .\n"
    assert (tmp_path / "out" / "wiki.txt.txt").read_text(encoding="utf8").splitlines() == [" = Title = ", " Some text ."]


@pytest.fixture(scope="module")
def protocol():
    from bench import tasks

    return tasks


def test_protocol_ablation_table(protocol):
    def row(seed, score, encoder=None, task="ner"):
        r = {"task": task, "system": "spacy", "phase": "eval", "seed": seed, "setting": {"head_lr_scale": 30.0},
             "result": {"ents_f" if task == "ner" else "accuracy": score}}
        return {**r, "encoder": encoder} if encoder else r

    rows = [row(1, 0.5), row(2, 0.7), row(3, 0.6), row(2, 0.1, "random-init"), row(1, 0.3, "random-init"),
            row(1, 0.9, "adapted-300", "textcat"), {**row(1, 0.2), "phase": "tune"}]
    assert protocol.ablation_table(rows).splitlines()[2:] == [
        "| ner | random-init | head_lr_scale 30 | 0.2000 ± 0.1414 | 0.1000-0.3000 | 1,2 |",
        "| ner | pretrained | head_lr_scale 30 | 0.6000 ± 0.1000 | 0.5000-0.7000 | 1,2,3 |",
        "| textcat | adapted-300 | head_lr_scale 30 | 0.9000 | 0.9000-0.9000 | 1 |",
    ]
    # Ablation rows are other runs than the protocol's: their own resume keys.
    assert protocol.run_key(rows[0]) != protocol.run_key({**rows[0], "encoder": "adapted-300"})
    assert protocol.run_key(rows[0]) == protocol.run_key({**rows[0], "encoder": "pretrained"})
    # Only the grid's seed-0 runs choose a setting: a probe (other seed or setting) never does.
    grid = {"task": "ner", "system": "spacy", "phase": "tune", "seed": 0, "setting": {"lr": 1e-4, "head_lr_scale": 30.0}}
    probes = [{**grid, "seed": 1}, {**grid, "setting": {**grid["setting"], "pooling": "first"}}, {**grid, "encoder": "adapted-300"}]
    assert protocol.grid_tune_rows([grid, *probes], "ner", "spacy") == [grid]


def test_protocol_paired_bootstrap(protocol):
    import numpy as np

    # Accuracy: spacy right on 3 of 4 docs in every seed, HF on 1 of 4.
    spacy = np.zeros((3, 4, 3))
    spacy[:, :3, 0] = 1
    hf = np.zeros((3, 4, 3))
    hf[:, :1, 0] = 1
    b = protocol.paired_bootstrap("textcat", hf, spacy, n=200)
    assert b["diff"] == pytest.approx(0.5)
    assert b["low"] >= 0 and b["p_better"] > 0.8
    same = protocol.paired_bootstrap("textcat", hf, hf, n=50)
    assert same["diff"] == 0 and same["p_better"] == 0
    # NER: F1 of summed (tp, fp, fn) per seed, then the mean over seeds.
    ner = np.array([[[2, 1, 0], [0, 0, 1]], [[1, 0, 1], [1, 0, 0]]], dtype=float)  # seeds x docs x (tp, fp, fn)
    f1 = protocol.metric_of("ner", ner.sum(axis=1))
    assert f1 == pytest.approx([2 * 2 / (4 + 1 + 1), 2 * 2 / (4 + 0 + 1)])


def test_prepare_base_random_init_keeps_architecture_and_tokenizer(bert_checkpoint, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    # A "trained" checkpoint: the tiny random one (itself seed-0 random) with moved weights.
    model = AutoModelForMaskedLM.from_pretrained(str(bert_checkpoint))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01)
    model.save_pretrained(str(tmp_path / "trained"))
    AutoTokenizer.from_pretrained(str(bert_checkpoint)).save_pretrained(str(tmp_path / "trained"))
    bert_checkpoint = tmp_path / "trained"
    for flag, name in (([], "copy"), (["--random-init"], "random")):
        subprocess.run([sys.executable, str(PROJECT / "scripts" / "prepare_base.py"), str(bert_checkpoint),
                        str(tmp_path / name), *flag], check=True, capture_output=True)
    config = {name: json.loads((tmp_path / name / "config.json").read_text()) for name in ("copy", "random")}
    for key in ("hidden_size", "num_hidden_layers", "vocab_size", "model_type"):
        assert config["random"][key] == config["copy"][key]
    assert (tmp_path / "random" / "vocab.txt").read_text() == (tmp_path / "copy" / "vocab.txt").read_text()
    original = load_file(str(bert_checkpoint / "model.safetensors"))
    copy, random = (load_file(str(tmp_path / n / "model.safetensors")) for n in ("copy", "random"))
    key = "bert.embeddings.word_embeddings.weight"
    assert (copy[key] == original[key]).all() and not (random[key] == original[key]).all()
