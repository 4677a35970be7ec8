"""The pretraining / CLI / version entries of docs/TROUBLESHOOTING.md that had no test: each
error is triggered and its message checked for the value at fault and the fix."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

from spacy_mlm import compat
from spacy_mlm.cli import main as cli_main
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.mlm_data.corpus import any_corpus, jsonl_corpus, plain_text_corpus
from spacy_mlm.pretrain.checkpoint import load_checkpoint
from spacy_mlm.pretrain.config import load_config
from spacy_mlm.pretrain.init_model import init_model
from spacy_mlm.pretrain.loop import pretrain
from spacy_mlm.pretrain.model import load_mlm_model
from spacy_mlm.pretrain.tokenizer import train_tokenizer

from .pretrain_fixtures import CONFIG, overrides, stopped_run, write_lines

pytest_plugins = ["tests.pretrain_fixtures"]

BASE = {"paths.base_model": "m", "paths.train": "t"}
CUDA = torch.cuda.is_available()


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


# ------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "edit,extra,pattern",
    [
        (("[training]", "[trainig]\nx = 1\n\n[training]"), {}, r"Unknown config section \[trainig\]\. Did you mean 'training'"),
        ("DROP_MASKING", {}, r"The config has no \[masking\] section: copy it from the output of `spacy-mlm init-config pretrain -`"),
        (('@misc = "spacy_mlm.TokenMasking.v1"\n', ""), {}, r"\[masking\] needs an @misc function"),
        (None, {"training.schedule": "cosin"}, r"\[training\] schedule = 'cosin': use one of linear, cosine, constant"),
        (None, {"training.precision": "fp8"}, r"\[training\] precision = 'fp8': use one of fp32, bf16, fp16"),
    ],
    ids=["unknown-section", "missing-section", "missing-@misc", "schedule", "precision"],
)
def test_config_errors(tmp_path, edit, extra, pattern):
    path = CONFIG
    if edit is not None:
        path = tmp_path / "bad.cfg"
        text = CONFIG.read_text()
        if edit == "DROP_MASKING":
            start = text.index("[masking]")
            text = text[:start] + text[text.index("[training]"):]
        else:
            text = text.replace(*edit, 1)
        path.write_text(text)
    with pytest.raises(SpacyMlmError, match=pattern):
        load_config(path, {**BASE, **extra})


def test_config_file_base_model_and_corpus_required(tmp_path):
    with pytest.raises(SpacyMlmError, match=r"Config file not found: .*nope\.cfg\. Write one with `spacy-mlm init-config pretrain .*nope\.cfg`"):
        load_config(tmp_path / "nope.cfg", BASE)
    with pytest.raises(SpacyMlmError, match=r"No base model: pass --paths\.base_model DIR"):
        load_config(CONFIG, {"paths.train": "t"})
    with pytest.raises(SpacyMlmError, match=r"No training corpus: pass --paths\.train FILE"):
        load_config(CONFIG, {"paths.base_model": "m"})


def test_cli_bad_override_syntax(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["pretrain", str(CONFIG), str(tmp_path / "out"), "stray-argument"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Error: Could not parse the overrides ['stray-argument']: write them as --section.key value." in err


# ------------------------------------------------------------------------ checkpoint and tokenizer


def test_base_model_and_tokenizer_errors(tmp_path, pt_model):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpacyMlmError, match=r"Base model '.*empty' is not an HF checkpoint \(no config\.json\).*init-model"):
        load_mlm_model(str(tmp_path / "empty"))
    with pytest.raises(SpacyMlmError, match=r"Could not load a tokenizer from '.*empty'"):
        load_mlm_model(str(pt_model), str(tmp_path / "empty"))
    # No mask token: a tokenizer whose files declare none (e.g. a causal-LM tokenizer).
    no_mask = tmp_path / "no_mask"
    shutil.copytree(pt_model, no_mask)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        data = json.loads((no_mask / name).read_text())
        data.pop("mask_token", None)
        if name == "tokenizer_config.json":
            data["mask_token"] = None
        (no_mask / name).write_text(json.dumps(data))
    with pytest.raises(SpacyMlmError, match=r"The tokenizer of '.*no_mask' has no mask or padding token"):
        load_mlm_model(str(no_mask))
    with pytest.raises(SpacyMlmError, match=r"The tokenizer in .*no_mask has no mask or padding token: an MLM needs both"):
        init_model(tmp_path / "m", no_mask)
    # A config.json that names no masked-LM architecture.
    broken = tmp_path / "broken"
    shutil.copytree(pt_model, broken)
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(SpacyMlmError, match=r"Could not load an MLM checkpoint from '.*broken'"):
        load_mlm_model(str(broken))


def test_checkpoint_of_another_model(tmp_path, pt_model, pt_tokenizers):
    """--resume with checkpoint files from another architecture (copied in by hand)."""
    init_model(tmp_path / "roberta", pt_tokenizers["bpe"], arch="roberta", size="tiny", max_length=64)
    ckpt = tmp_path / "step_00000002"
    ckpt.mkdir()
    shutil.copy(tmp_path / "roberta" / "model.safetensors", ckpt / "model.safetensors")
    model, _ = load_mlm_model(str(pt_model))
    with pytest.raises(SpacyMlmError, match=r"Checkpoint .*step_00000002 does not match the model: missing .*unexpected"):
        load_checkpoint(ckpt, model, None, None, None, None)


def test_tokenizer_and_init_model_arguments(tmp_path, pt_tokenizers):
    with pytest.raises(SpacyMlmError, match=r"Unknown tokenizer kind 'sentencepiece': use one of wordpiece, bpe"):
        train_tokenizer(["a b"], tmp_path / "t", vocab_size=200, kind="sentencepiece")
    with pytest.raises(SpacyMlmError, match=r"vocab_size=50 is too small: use at least 100"):
        train_tokenizer(["a b"], tmp_path / "t", vocab_size=50)
    with pytest.raises(SpacyMlmError, match=r"The tokenizer corpus is empty"):
        train_tokenizer([], tmp_path / "t", vocab_size=200)
    with pytest.raises(SpacyMlmError, match=r"Unknown --arch 'gpt2': use one of"):
        init_model(tmp_path / "m", pt_tokenizers["wordpiece"], arch="gpt2")
    with pytest.raises(SpacyMlmError, match=r"Unknown --size 'huge': use one of"):
        init_model(tmp_path / "m", pt_tokenizers["wordpiece"], size="huge")
    with pytest.raises(SpacyMlmError, match=r"--arch roberta needs a byte-level BPE tokenizer"):
        init_model(tmp_path / "m", pt_tokenizers["wordpiece"], arch="roberta")


# ------------------------------------------------------------------------ data format


def test_corpus_format_errors(tmp_path):
    with pytest.raises(SpacyMlmError, match=r"Corpus file not found: .*missing\.txt\. Check the path"):
        list(any_corpus(str(tmp_path / "missing.txt"))())
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SpacyMlmError, match=r"Corpus directory .*empty_dir holds no files"):
        list(any_corpus(str(tmp_path / "empty_dir"))())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "cut\n')
    with pytest.raises(SpacyMlmError, match=r"bad\.jsonl:2: invalid JSON"):
        list(jsonl_corpus(str(bad))())
    bad.write_text('{"text": "ok"}\n{"body": "no text key"}\n')
    with pytest.raises(SpacyMlmError, match=r"bad\.jsonl:2: JSONL records need a string 'text' field"):
        list(jsonl_corpus(str(bad))())
    (tmp_path / "junk.spacy").write_bytes(b"this is not msgpack")
    with pytest.raises(SpacyMlmError, match=r"junk\.spacy: not a \.spacy DocBin file"):
        list(any_corpus(str(tmp_path / "junk.spacy"))())
    with pytest.raises(SpacyMlmError, match=r"encoding_errors = 'lenient': use one of"):
        plain_text_corpus(str(bad), encoding_errors="lenient")


# ------------------------------------------------------------------------ run settings


@pytest.mark.parametrize(
    "extra,pattern",
    [
        ({"training.seq_length": 128}, r"seq_length = 128 exceeds the model's max_position_embeddings \(64\)"),
        ({"training.batch_tokens": 96, "training.grad_accum": 2},
         r"batch_tokens // seq_length = 3 sequences per step must be a positive multiple of grad_accum x processes = 2 x 1"),
        ({"training.seq_length": 4}, r"\[training\] seq_length = 4: use a whole number >= 8"),
        ({"masking.rate": 1.5}, r"\[masking\] rate = 1\.5: use a value between 0 and 1"),
        ({"paths.dev": "EMPTY"}, r"dev corpus is empty"),
        pytest.param({"system.gpu_id": 0}, r"gpu_id = 0 but CUDA is not available: use --gpu-id -1",
                     marks=pytest.mark.skipif(CUDA, reason="a GPU is available")),
        pytest.param({"training.precision": "fp16"}, r"precision = fp16 needs a GPU \(--gpu-id 0\); on CPU use bf16",
                     marks=pytest.mark.skipif(CUDA, reason="a GPU is available")),
    ],
    ids=["seq-too-long", "batch-multiple", "seq-too-short", "mask-rate", "empty-dev", "no-cuda", "fp16-cpu"],
)
def test_run_setting_errors(tmp_path, pt_corpus, pt_model, extra, pattern):
    o = overrides(*pt_corpus, pt_model, training__max_steps=1, system__threads=1)
    if extra.get("paths.dev") == "EMPTY":
        extra = {"paths.dev": str(write_lines(tmp_path / "empty.txt", ["", "  "]))}
    with pytest.raises(SpacyMlmError, match=pattern):
        pretrain(CONFIG, tmp_path / "out", {**o, **extra})


def test_resume_without_checkpoint_starts_over(tmp_path, pt_corpus, pt_model, capsys):
    """Killed before its first checkpoint: --resume says so, starts at step 0, and the log has
    no doubled lines."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=3, training__eval_frequency=0,
                  training__checkpoint_frequency=2, system__threads=1)
    stopped_run(tmp_path / "out", o, after_step=1)
    pretrain(CONFIG, tmp_path / "out", o, resume=True)
    assert f"No complete checkpoint in {tmp_path / 'out' / 'checkpoints'}: starting from step 0" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


# ------------------------------------------------------------------------ library versions


def test_incompatible_versions(monkeypatch):
    real = compat.installed_version
    monkeypatch.setattr(compat, "installed_version", lambda name: "5.0.0" if name == "transformers" else real(name))
    assert compat.version_problems() == ["transformers 5.0.0 (needs >=4.41,<4.53.3)"]
    with pytest.warns(compat.IncompatibleVersionWarning, match=r"found transformers 5\.0\.0 .*run pip install "
                                                               r"'spacy>=3\.8,<3\.9' 'spacy-transformers>=1\.3,<1\.5' "
                                                               r"'transformers>=4\.41,<4\.53\.3'"):
        compat.warn_on_untested_versions()
    error = compat.incompatible_versions_error(ImportError("cannot import name 'BatchEncoding'"))
    assert isinstance(error, SpacyMlmError) and isinstance(error, ImportError)
    assert "Installed: spacy 3.8" in str(error) and "Out of range: transformers 5.0.0" in str(error)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(compat, "installed_version", real)
        compat.warn_on_untested_versions()  # the tested versions: silent


def test_spacy_transformers_import_failure_is_explained():
    """What a user with a broken spacy-transformers/transformers pair sees on first use of a pipe
    (`import spacy_mlm` alone stays cheap and imports neither)."""
    code = "import sys; sys.modules['spacy_transformers'] = None; import spacy_mlm; spacy_mlm.FillMask"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("spacy_mlm.errors.IncompatibleVersionsError: spacy-transformers/transformers could not "
                           "be imported (ModuleNotFoundError")
    assert "Installed: spacy 3.8" in last and "run pip install 'spacy>=3.8,<3.9'" in last


def test_resume_of_an_old_format_checkpoint(tmp_path, pt_corpus, pt_model):
    """A run dir whose checkpoints have the old five-file layout (optimizer.safetensors,
    rng.safetensors, trainer_state.json): --resume names the checkpoint and the fix, which works."""
    o = overrides(*pt_corpus, pt_model, training__max_steps=2, training__eval_frequency=0,
                  training__checkpoint_frequency=1, system__threads=1)
    out = tmp_path / "out"
    pretrain(CONFIG, out, o)
    old = out / "checkpoints" / "step_00000001"
    (old / "trainer_state.safetensors").rename(old / "optimizer.safetensors")
    (old / "rng.safetensors").write_bytes((old / "optimizer.safetensors").read_bytes())
    (old / "trainer_state.json").write_text(json.dumps({"state": {"step": 1, "sequences": 8, "tokens": 256}}))
    with pytest.raises(SpacyMlmError, match=r"step_00000001 was written by an older spacy-mlm .*cannot resume.* "
                                            r"--paths\.base_model .*step_00000001 and a new output directory"):
        pretrain(CONFIG, out, o, resume=True)
    final = pretrain(CONFIG, tmp_path / "new", {**o, "paths.base_model": str(old), "training.max_steps": 1})
    assert (final / "model.safetensors").is_file()
