"""The efficiency switches of the pretraining config: each reaches the model/optimizer, "auto"
resolves per hardware, and the switched runs train the same model."""

import json

import pytest
import torch

import spacy_mlm.pretrain.device as device
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pretrain.device import resolve_precision
from spacy_mlm.pretrain.loop import pretrain
from spacy_mlm.pretrain.model import load_mlm_model
from spacy_mlm.pretrain.optim import make_optimizer

from .pretrain_fixtures import CONFIG, overrides

pytest_plugins = ["tests.pretrain_fixtures"]


def losses(out):
    return [m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in m]


def test_auto_precision_is_bf16_only_where_it_is_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx", "avx2", "fma"})  # bf16 emulated: ~100x slower
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert resolve_precision("auto", cpu) == "bf16"
    # A CPU with bf16 whose torch kernels are held at AVX2 (ATEN_CPU_CAPABILITY=avx2) runs as an AVX2 one.
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"


def test_adamw_kernels(pt_model):
    model, _ = load_mlm_model(str(pt_model))
    train_cfg = {"weight_decay": 0.01, "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6}
    assert make_optimizer(model, train_cfg, "foreach").defaults["foreach"] is True
    assert make_optimizer(model, train_cfg, "for-loop").defaults["foreach"] is False
    assert make_optimizer(model, train_cfg, "fused").defaults["fused"] is True


def test_switches_reach_the_run_and_train_the_same_model(tmp_path, pt_corpus, pt_model, restore_torch_threads):
    """Defaults ("auto") and the explicit other choices: run.json records what ran; with dropout off
    the two runs' losses agree (different kernels, the same maths)."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=3, training__eval_frequency=0,
                  model__dropout=0.0, system__threads=1, training__precision="auto")
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


# ---------------------------------------------------------------------------- tokenize once


def test_cached_packing_equals_streaming(tmp_path, pt_tokenizers):
    from transformers import AutoTokenizer

    from spacy_mlm.mlm_data.corpus import any_corpus
    from spacy_mlm.mlm_data.packing import Packer

    from .pretrain_fixtures import sentences, write_lines

    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    tok.backend_tokenizer.enable_truncation(20)  # as tokenizer.json files have it: each call resets it
    path = write_lines(tmp_path / "c.txt", sentences(60, seed=5))
    for words in (None, "whitespace"):
        kw = dict(shuffle_buffer=8, seed=1, word_boundaries=words)
        streamed = Packer(any_corpus(str(path)), tok, 32, **kw).stream(skip=5)
        cached = Packer(any_corpus(str(path)), tok, 32, cache_dir=tmp_path / "cache", **kw)
        before = cached.cache_path()
        assert cached.build_cache()[1] is True
        assert [next(streamed) for _ in range(150)] == [x for _, x in zip(range(150), cached.stream(skip=5))]
        again = Packer(any_corpus(str(path)), tok, 32, cache_dir=tmp_path / "cache", **kw)
        assert again.build_cache() == (before, False) and cached.cache_path() == before
    # A changed corpus file is a new cache entry.
    write_lines(path, sentences(61, seed=6))
    changed = Packer(any_corpus(str(path)), tok, 32, cache_dir=tmp_path / "cache")
    assert changed.cache_path() != cached.cache_path() and changed.build_cache()[1] is True


def test_resume_and_a_second_run_do_not_retokenize(tmp_path, pt_corpus, pt_model, monkeypatch, restore_torch_threads):
    from safetensors.torch import load_file

    from spacy_mlm.mlm_data.packing import Packer

    from .pretrain_fixtures import stopped_run

    tokenized = []
    original = Packer._tokenized_and_packed

    def counting(self):
        tokenized.append(self.name)
        return original(self)

    monkeypatch.setattr(Packer, "_tokenized_and_packed", counting)
    o = overrides(*pt_corpus, pt_model, training__max_steps=6, training__eval_frequency=0,
                  training__checkpoint_frequency=2, system__threads=1)
    stopped_run(tmp_path / "cut", o, after_step=3)
    assert tokenized.count("training corpus") == 1
    resumed = pretrain(CONFIG, tmp_path / "cut", o, resume=True)
    full = pretrain(CONFIG, tmp_path / "full", o)  # another run, the same corpus: the same cache
    assert tokenized.count("training corpus") == 1
    assert len(list((tmp_path / ".spacy-mlm-cache").iterdir())) == 1
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    # Without the cache the same run streams and tokenizes every epoch, and trains the same weights.
    plain = pretrain(CONFIG, tmp_path / "plain", {**o, "corpus.cache": False})
    assert tokenized.count("training corpus") >= 2
    c = load_file(str(plain / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], c[key], atol=1e-6, rtol=0)


def test_only_the_first_process_tokenizes(tmp_path, pt_corpus, pt_model):
    import os
    import subprocess
    import sys

    from .test_pretrain_ddp import free_port

    o = overrides(*pt_corpus, pt_model, training__max_steps=2, training__eval_frequency=0, system__threads=1)
    args = [f"--{k}={'null' if v is None else v}" for k, v in o.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "spacy_mlm", "pretrain", str(CONFIG), str(tmp_path / "out"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (r.stdout + r.stderr).count("Tokenizing the training corpus once") == 1, r.stdout
