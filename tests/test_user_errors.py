"""Inputs users get wrong end in one message, not a traceback: each command is run with a bad
value, a damaged file, the wrong kind of path or an unknown name, and must exit non-zero with a
message naming the culprit. Loading runs no pickle: a pipeline whose transformer weights carry a
pickled payload is refused, and the payload never runs."""

import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import srsly

from spacy_mlm.cli import main
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.readers.pairs import read_pair_docs

from .conftest import corpus, make_nlp
from .pretrain_fixtures import CONFIG
from .util import copy_with, truncate

# A line of the STS Benchmark format with the score 4.0 (column 5); {score} on the second line.
STS_LINE = "main-captions\tMSRvid\t2012test\t0001\t{score}\tA man is playing a flute.\tA man plays the flute.\n"
# What the pretraining cases need besides the case's own settings: small and quick, no cache.
PRETRAIN = ["--training.seq_length", "32", "--training.batch_tokens", "256", "--training.max_steps", "1",
            "--logging.progress_bar", "false", "--corpus.cache", "false", "--system.threads", "1"]


class Exploit:
    """Unpickling this creates `marker` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant_pickle(pipeline: Path, marker: Path) -> None:
    """Replace the encoder weights inside `transformer/model` (spacy-transformers' HFShim
    msgpack, field `state`, a torch.save archive) with a torch.save of Exploit."""
    import torch

    model_file = pipeline / "transformer" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    node = next(n for n, shims in enumerate(msg["shims"]) if shims)
    shim = srsly.msgpack_loads(msg["shims"][node][0])
    buf = io.BytesIO()
    torch.save(Exploit(marker), buf)
    shim["state"] = buf.getvalue()
    msg["shims"][node][0] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf8")


@pytest.fixture(scope="module")
def p(tmp_path_factory, bert_checkpoint, tokenizer_dirs):
    """Every path the cases use, good and damaged."""
    from spacy_mlm.pretrain.init_model import init_model

    root = tmp_path_factory.mktemp("user_errors")
    pipeline = root / "pipeline"
    make_nlp(bert_checkpoint, "fill_mask").to_disk(pipeline)
    short = root / "short"  # 64 positions: a few hundred words are several windows
    init_model(short, tokenizer_dirs["wordpiece"], arch="bert", size="tiny", max_length=64)
    (root / "not_a_pipeline").mkdir()
    (root / "not_a_pipeline" / "notes.txt").write_text("hello\n")
    (root / "binary.cfg").write_bytes(bytes(range(256)) * 4)
    (root / "json.cfg").write_text(json.dumps({"paths": {"train": "train.txt"}}))
    (root / "train.txt").write_text("\n".join(corpus(40)) + "\n")
    (root / "empty.txt").write_text("\n  \n")
    (root / "long.txt").write_text(" ".join(corpus(40)) + "\n")  # one line, about 400 words
    for name, score in (("sts_high", "7.5"), ("sts_negative", "-1"), ("sts_inf", "inf")):
        (root / f"{name}.tsv").write_text(STS_LINE.format(score="4.0") + STS_LINE.format(score=score))
    return SimpleNamespace(
        root=root, pipeline=pipeline, checkpoint=bert_checkpoint, short=short,
        truncated=copy_with(bert_checkpoint, root / "truncated", lambda d: truncate(d / "model.safetensors")),
        damaged=copy_with(pipeline, root / "damaged", lambda d: truncate(d / "transformer" / "model")),
        pickled=copy_with(pipeline, root / "pickled", lambda d: plant_pickle(d, root / "pwned")),
        marker=root / "pwned",
        unknown_factory=copy_with(pipeline, root / "unknown_factory", lambda d: replace_in(
            d / "config.cfg", 'factory = "fill_mask"', 'factory = "fill_mask_nope"')),
        unknown_function=copy_with(pipeline, root / "unknown_function", lambda d: replace_in(
            d / "config.cfg", '"spacy-transformers.TransformerModel.v3"', '"spacy-transformers.TransformerModel.v9"')),
    )


def run(args) -> int:
    """The exit code of `spacy-mlm ARGS` run in this process (read its output with capsys). An
    exception that escapes main() (a traceback for the user) fails the test with that exception."""
    try:
        main([str(a) for a in args], prog_name="spacy-mlm")
    except SystemExit as e:
        return e.code
    return 0


def pretrain_args(p, out: str, *extra):
    return ["pretrain", CONFIG, p.root / out, "--paths.train", p.root / "train.txt",
            "--paths.base_model", p.checkpoint, *PRETRAIN, *extra]


# (id, args from the paths, substrings the message must hold)
CASES = [
    ("top-k-negative", lambda p: ["fill-mask", p.pipeline, "the [MASK] is paris", "--top-k", "-1"],
     ["--top-k", "-1 is not in the range x>=1"]),
    ("top-k-zero-checkpoint", lambda p: ["fill-mask", p.checkpoint, "the [MASK] is paris", "--top-k", "0"],
     ["--top-k", "0 is not in the range x>=1"]),
    ("truncated-safetensors-fill-mask", lambda p: ["fill-mask", p.truncated, "the [MASK] is paris"],
     ["truncated/model.safetensors is damaged or incomplete", "Copy or download the checkpoint again"]),
    ("truncated-safetensors-score", lambda p: ["score", p.truncated, p.root / "train.txt"],
     ["truncated/model.safetensors is damaged or incomplete"]),
    ("truncated-safetensors-pretrain", lambda p: pretrain_args(p, "out-trunc", "--paths.base_model", p.truncated),
     ["Base model", "truncated/model.safetensors is damaged or incomplete"]),
    ("quantize-not-a-pipeline", lambda p: ["quantize", p.root / "not_a_pipeline", p.root / "q1", "--dtype", "int8"],
     ["not_a_pipeline is not a spaCy pipeline (no config.cfg in it)", "nlp.to_disk()"]),
    ("quantize-hf-checkpoint", lambda p: ["quantize", p.checkpoint, p.root / "q2", "--dtype", "int8"],
     ["is not a spaCy pipeline", "It is an HF checkpoint (config.json)"]),
    ("binary-config", lambda p: ["pretrain", p.root / "binary.cfg", p.root / "out-bin"],
     ["binary.cfg is not a config file (it is not UTF-8 text)", "spacy-mlm init-config pretrain"]),
    ("json-config", lambda p: ["pretrain", p.root / "json.cfg", p.root / "out-json"],
     ["json.cfg is not a valid config file", "no section headers"]),
    ("unknown-factory", lambda p: ["fill-mask", p.unknown_factory, "the [MASK] is paris"],
     ["unknown_factory", "fill_mask_nope", "Install the package that provides it"]),
    ("unknown-registered-function", lambda p: ["quantize", p.unknown_function, p.root / "q3", "--dtype", "int8"],
     ["unknown_function", "spacy-transformers.TransformerModel.v9", "Install the package that provides it"]),
    ("damaged-transformer-weights", lambda p: ["score", p.damaged, p.root / "train.txt"],
     ["damaged/transformer/model is damaged or incomplete", "Save or copy the pipeline again"]),
    ("pickled-transformer-weights", lambda p: ["fill-mask", p.pickled, "the [MASK] is paris"],
     ["pickled/transformer/model holds pickled objects other than tensors", "Do not use this pipeline"]),
    ("empty-training-corpus", lambda p: pretrain_args(p, "out-empty", "--paths.train", p.root / "empty.txt"),
     ["The training corpus is empty", "empty.txt holds no non-blank text", "--paths.train"]),
    ("learning-rate-negative", lambda p: pretrain_args(p, "out-lr", "--training.learning_rate", "-1"),
     ["[training] learning_rate = -1: use a number > 0"]),
    ("seq-length-zero", lambda p: pretrain_args(p, "out-seq", "--training.seq_length", "0"),
     ["[training] seq_length = 0: use a whole number >= 8"]),
    ("max-steps-zero", lambda p: pretrain_args(p, "out-steps", "--training.max_steps", "0"),
     ["[training] max_steps = 0: use a whole number >= 1"]),
    ("score-batch-size-zero", lambda p: ["score", p.pipeline, p.root / "train.txt", "--batch-size", "0"],
     ["--batch-size", "0 is not in the range x>=1"]),
    ("score-missing-gpu", lambda p: ["score", p.pipeline, p.root / "train.txt", "--gpu-id", "99"],
     ["--gpu-id 99"]),
    ("init-model-no-tokenizer", lambda p: ["init-model", p.root / "m1", "--tokenizer", p.root / "not_a_pipeline"],
     ["not_a_pipeline", "holds none of tokenizer.json"]),
    ("init-model-max-length-zero", lambda p: ["init-model", p.root / "m2", "--tokenizer", p.checkpoint,
                                              "--max-length", "0"],
     ["--max-length", "0 is not in the range x>=8"]),
    ("sts-score-above-5", lambda p: ["convert", p.root / "sts_high.tsv", p.root / "high.spacy", "--kind", "sts"],
     ["sts_high.tsv:2: the score (column 5) 7.5 is outside 0..5"]),
    ("sts-score-negative", lambda p: ["convert", p.root / "sts_negative.tsv", p.root / "neg.spacy", "--kind", "sts"],
     ["sts_negative.tsv:2: the score (column 5) -1 is outside 0..5"]),
    ("sts-score-infinite", lambda p: ["convert", p.root / "sts_inf.tsv", p.root / "inf.spacy", "--kind", "sts"],
     ["sts_inf.tsv:2: the score (column 5) inf is not a finite number"]),
]


@pytest.mark.parametrize("args,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_user_error_is_a_message(p, capsys, args, expected):
    code = run(args(p))
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code not in (0, None), output
    assert "Traceback" not in output
    for fragment in expected:
        assert fragment in output, output
    assert not p.marker.exists(), "the pickled payload ran"


def test_a_damaged_base_model_leaves_no_run_behind(p, capsys):
    """The base model is checked before OUTPUT_DIR is touched: the fixed command needs no --force."""
    out = p.root / "out-no-run"
    assert run(pretrain_args(p, out.name, "--paths.base_model", p.truncated)) == 1
    assert "model.safetensors is damaged" in capsys.readouterr().err
    assert not out.exists()


def test_pickled_weights_refused_by_the_real_command(p):
    """The same through the installed entry point: one line of message, no traceback, no payload run."""
    proc = subprocess.run([sys.executable, "-m", "spacy_mlm", "fill-mask", str(p.pickled), "the [MASK] is"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "pickled/transformer/model holds pickled objects other than tensors" in proc.stderr
    assert not p.marker.exists()


def test_commands_refuse_pipelines_when_torch_would_unpickle_anything(p, capsys, monkeypatch):
    """With TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set, torch.load would run the payload: refused first."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    code = run(["fill-mask", p.pickled, "the [MASK] is paris"])
    err = capsys.readouterr().err
    assert code == 1 and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set" in err and str(p.pickled) in err
    assert not p.marker.exists()


def test_torch_requirement_loads_weights_only():
    """setup.py asks for the torch whose torch.load defaults to weights_only=True."""
    import torch
    from packaging.version import Version

    setup = (Path(__file__).parent.parent / "setup.py").read_text()
    assert '"torch>=2.6"' in setup
    assert Version(torch.__version__.split("+")[0]) >= Version("2.6")


# ----------------------------------------------------------------------------- pairs readers


@pytest.mark.parametrize("score,fragment", [(7.5, "7.5 is outside 0..5"), (-1, "-1 is outside 0..5"),
                                            ("inf", "inf is not a finite number")])
def test_pair_scores_outside_the_scale(tmp_path, score, fragment):
    import spacy

    path = tmp_path / "pairs.jsonl"
    rows = [{"sentence1": "a man", "sentence2": "a woman", "score": 2.0},
            {"sentence1": "a dog", "sentence2": "a cat", "score": score}]  # "inf": JSON has no infinity
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(SpacyMlmError) as error:
        list(read_pair_docs(path, spacy.blank("en")))
    assert f"{path}:2: the score {fragment}" in str(error.value) and "score_range" in str(error.value)


def test_pair_score_range_is_a_setting(tmp_path):
    import spacy

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"sentence1": "a dog", "sentence2": "a cat", "score": -0.5}) + "\n")
    docs = list(read_pair_docs(path, spacy.blank("en"), score_range=(-1.0, 1.0)))
    assert docs[0].user_data["sim_pair_score"] == -0.5


# ----------------------------------------------------------------------------- fill_mask targets


def test_out_of_vocabulary_targets_warn_naming_the_piece(bert_checkpoint):
    nlp = make_nlp(bert_checkpoint)
    nlp.add_pipe("fill_mask", config={"targets": ["paris", "parisian"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nlp.initialize()
    messages = [str(w.message) for w in caught if "targets" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    assert "'parisian' -> 'paris'" in messages[0] and "oov_targets" in messages[0]
    assert type(next(w for w in caught if "targets" in str(w.message)).message).__name__ == "OovTargetWarning"


def test_out_of_vocabulary_targets_can_be_an_error(bert_checkpoint):
    nlp = make_nlp(bert_checkpoint)
    nlp.add_pipe("fill_mask", config={"targets": ["paris", "parisian"], "oov_targets": "error"})
    with pytest.raises(SpacyMlmError, match=r"'parisian' -> 'paris'.*oov_targets = \"warn\""):
        nlp.initialize()


# ----------------------------------------------------------------------------- score: long texts


def test_score_reads_long_texts_whole(p, capsys):
    """A text longer than the model's 64 positions is scored window by window: every wordpiece
    counts (it used to be cut to the first 62), and the output says how many texts were windowed."""
    from transformers import AutoTokenizer

    text = (p.root / "long.txt").read_text().strip()
    n_pieces = len(AutoTokenizer.from_pretrained(str(p.short))(text, add_special_tokens=False)["input_ids"])
    assert n_pieces > 200
    code = run(["score", p.short, p.root / "long.txt"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"tokens: {n_pieces}\n" in out
    assert "windowed_texts: 1 (longer than 64 wordpieces: scored window by window)" in out


@pytest.mark.parametrize("n_body,max_length", [(10, 12), (11, 12), (100, 12), (101, 13), (37, 8)])
def test_text_windows_score_every_piece_once(n_body, max_length):
    from spacy_mlm.pretrain.score import text_windows

    ids = [101] + list(range(1000, 1000 + n_body)) + [102]
    mask = [1] + [0] * n_body + [1]
    windows = text_windows(ids, mask, max_length)
    if len(ids) <= max_length:  # fits: the text as it is, every position (the caller skips specials)
        assert windows == [(ids, list(range(len(ids))))]
        return
    scored = []
    for window, positions in windows:
        assert len(window) <= max_length and window[0] == 101 and window[-1] == 102
        scored += [window[i] for i in positions]
    assert sorted(scored) == ids[1:-1]  # each wordpiece once, no special token
