"""The efficiency switches of the pretraining config: each reaches the model/optimizer, "auto"
resolves per hardware, and the switched runs train the same model."""

import json

import pytest
import torch

import spacy_mlm.pretrain.loop as loop
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pretrain.loop import make_optimizer, pretrain, resolve_precision
from spacy_mlm.pretrain.model import load_mlm_model

from .pretrain_fixtures import CONFIG, overrides

pytest_plugins = ["tests.pretrain_fixtures"]


def losses(out):
    return [m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in m]


def test_auto_precision_is_bf16_only_where_it_is_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx", "avx2", "fma"})  # bf16 emulated: ~100x slower
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(loop, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"


def test_adamw_kernels(pt_model):
    model, _ = load_mlm_model(str(pt_model))
    T = {"weight_decay": 0.01, "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6}
    assert make_optimizer(model, T, "foreach").defaults["foreach"] is True
    assert make_optimizer(model, T, "for-loop").defaults["foreach"] is False
    assert make_optimizer(model, T, "fused").defaults["fused"] is True


def test_switches_reach_the_run_and_train_the_same_model(tmp_path, pt_corpus, pt_model, restore_torch_threads):
    """Defaults ("auto") and the explicit other choices: run.json records what ran; with dropout off
    the two runs' losses agree (different kernels, the same maths)."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=3, training__eval_frequency=0,
                  model__dropout=0.0, system__threads=1)
    pretrain(CONFIG, tmp_path / "auto", o)
    pretrain(CONFIG, tmp_path / "other", {**o, "model.attn_implementation": "eager", "training.adamw": "for-loop",
                                          "training.precision": "fp32"})
    auto = json.loads((tmp_path / "auto" / "run.json").read_text())["settings"]
    other = json.loads((tmp_path / "other" / "run.json").read_text())["settings"]
    assert auto["precision"] == resolve_precision("auto", torch.device("cpu"))
    assert (auto["attn_implementation"], auto["adamw"]) == ("sdpa", "foreach")  # BERT has SDPA in transformers
    assert (other["attn_implementation"], other["adamw"], other["precision"]) == ("eager", "for-loop", "fp32")
    if auto["precision"] == "fp32":
        assert losses(tmp_path / "auto") == pytest.approx(losses(tmp_path / "other"), rel=1e-4)


@pytest.mark.parametrize("key,value,message", [
    ("training.adamw", "fastest", r"\[training\] adamw = 'fastest': use one of auto, fused, foreach, for-loop"),
    ("model.attn_implementation", "flash", r"\[model\] attn_implementation = 'flash': use one of auto, sdpa, eager"),
])
def test_bad_switch_values_name_key_and_choices(pt_corpus, pt_model, key, value, message):
    from spacy_mlm.pretrain.config import load_config

    with pytest.raises(SpacyMlmError, match=message):
        load_config(CONFIG, {**overrides(*pt_corpus, pt_model), key: value})
