"""Corpus readers, packing and config checking."""

import json

import pytest
from transformers import AutoTokenizer

from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.mlm_data.corpus import any_corpus, holdout, jsonl_corpus, plain_text_corpus
from spacy_mlm.mlm_data.packing import Packer
from spacy_mlm.pretrain.config import load_config

from .pretrain_fixtures import CONFIG, sentences

pytest_plugins = ["tests.pretrain_fixtures"]


def test_readers(tmp_path):
    (tmp_path / "lines.txt").write_text("one doc\n\n  two doc  \n", encoding="utf8")
    (tmp_path / "paras.txt").write_text("para one\nstill one\n\n\npara two\n", encoding="utf8")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "a b"}) + "\n" + json.dumps({"text": "c"}) + "\n")
    assert list(plain_text_corpus(str(tmp_path / "lines.txt"))()) == ["one doc", "two doc"]
    assert list(plain_text_corpus(str(tmp_path / "paras.txt"), blank_line_separated=True)()) == [
        "para one\nstill one", "para two"]
    assert list(jsonl_corpus(str(tmp_path / "docs.jsonl"))()) == ["a b", "c"]
    assert list(any_corpus(str(tmp_path / "docs.jsonl"), max_docs=1)()) == ["a b"]
    # Restartable: a second epoch reads the files again.
    reader = any_corpus(str(tmp_path / "lines.txt"))
    assert list(reader()) == list(reader())


def test_docbin_reader(tmp_path):
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    DocBin(docs=[nlp("hello world"), nlp("second doc")]).to_disk(tmp_path / "c.spacy")
    assert list(any_corpus(str(tmp_path / "c.spacy"))()) == ["hello world", "second doc"]


def test_non_utf8_names_file_and_line_or_is_replaced(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe line\n")
    with pytest.raises(SpacyMlmError, match=r"bad\.txt:2: not valid UTF-8"):
        list(any_corpus(str(path))())
    assert list(any_corpus(str(path), encoding_errors="replace")())[1] == "bad \ufffd\ufffd line"


def test_holdout_split_is_disjoint(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(f"doc {i}" for i in range(100)))
    corpus = any_corpus(str(path))
    dev, train = holdout(corpus, 10, True), holdout(corpus, 10, False)
    assert len(list(dev())) == 10 and len(list(train())) == 90
    assert not set(dev()) & set(train())


def test_packing_keeps_every_token_and_marks_boundaries(pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    texts = sentences(50, seed=3) + [" ".join(["paris london"] * 60)]  # one doc longer than a sequence
    seqs = [ids for ids, _ in Packer(lambda: iter(texts), tok, 32).epoch(0)]
    assert all(len(s) == 32 for s in seqs[:-1]) and len(seqs[-1]) <= 32
    assert all(s[0] == tok.cls_token_id for s in seqs)
    stream = [t for s in seqs for t in s[1:]]
    expected = [t for text in texts for t in tok(text, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]]
    assert stream == expected  # nothing dropped, docs separated by [SEP]
    # Several docs per sequence: packing, not one doc per padded row.
    assert len(seqs) == -(-len(expected) // 31)


def test_shuffle_is_a_permutation_and_depends_on_epoch(pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    texts = sentences(200, seed=4)
    plain = list(Packer(lambda: iter(texts), tok, 32).epoch(0))
    packer = Packer(lambda: iter(texts), tok, 32, shuffle_buffer=16, seed=1)
    e0, e1 = list(packer.epoch(0)), list(packer.epoch(1))
    assert sorted(map(tuple, (s for s, _ in e0))) == sorted(map(tuple, (s for s, _ in plain)))
    assert e0 != plain and e0 != e1 and e0 == list(packer.epoch(0))


def test_stream_skip_resumes_the_same_sequences(pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    texts = sentences(40, seed=4)
    packer = Packer(lambda: iter(texts), tok, 32, shuffle_buffer=8, seed=1)
    full = packer.stream()
    first = [next(full) for _ in range(100)]  # crosses epochs
    resumed = packer.stream(skip=37)
    assert [next(resumed) for _ in range(63)] == first[37:]


def test_empty_corpus_is_an_error(tmp_path, pt_tokenizers):
    tok = AutoTokenizer.from_pretrained(pt_tokenizers["wordpiece"])
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    packer = Packer(any_corpus(str(tmp_path / "empty.txt")), tok, 32, name="training corpus")
    with pytest.raises(SpacyMlmError, match="training corpus is empty"):
        next(packer.stream())


def test_override_typo_names_the_closest_key():
    with pytest.raises(SpacyMlmError, match=r"--training\.max_step\b.*Did you mean 'training\.max_steps'"):
        load_config(CONFIG, {"training.max_step": 3, "paths.base_model": "x", "paths.train": "y"})
    with pytest.raises(SpacyMlmError, match=r"Did you mean 'paths\.train'"):
        load_config(CONFIG, {"paths.trian": "x"})


def test_unknown_config_keys_name_the_closest(tmp_path):
    text = CONFIG.read_text()
    bad = tmp_path / "bad.cfg"
    bad.write_text(text.replace("grad_accum = 1", "grad_acum = 1"))
    with pytest.raises(SpacyMlmError, match=r"\[training\] grad_acum.*Did you mean 'grad_accum'"):
        load_config(bad, {"paths.base_model": "x", "paths.train": "y"})
    bad.write_text(text.replace("rate = 0.15", "rat = 0.15"))
    with pytest.raises(SpacyMlmError, match=r"\[masking\] rat .*Did you mean 'rate'"):
        load_config(bad, {"paths.base_model": "x", "paths.train": "y"})
    bad.write_text(text.replace("spacy_mlm.TokenMasking.v1", "spacy_mlm.TokenMask.v1"))
    with pytest.raises(SpacyMlmError, match=r"Did you mean 'spacy_mlm\.TokenMasking\.v1'"):
        load_config(bad, {"paths.base_model": "x", "paths.train": "y"})


def test_config_defaults_and_overrides():
    cfg = load_config(CONFIG, {"paths.base_model": "m", "paths.train": "t", "training.max_steps": 7})
    assert cfg["model"]["name"] == "m" and cfg["corpus"]["train"]["path"] == "t"
    assert cfg["training"]["max_steps"] == 7
