"""Hardening of the pipes (pipeline side): hostile Unicode, huge docs, n_process,
memory, safe loading, and the user-triggerable errors of the pipes.

One module-scoped pipeline (transformer + fill_mask + trf_ner + trf_textcat + trf_similarity on
the tiny BERT checkpoint, trained two steps) serves the property tests. The number of cases run
is printed at module teardown ("hardening cases run: ...").
"""

import io
import json
import math
import pickle
import signal
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from spacy.training import Example

from spacy_mlm import SpacyMlmError
from spacy_mlm.pipes import restore_vector_hooks

from .test_ner_textcat import cat_examples, ner_examples, train

CASES: Counter = Counter()
SEEN = {"max_chars": 0, "masks": 0}  # longest text and mask tokens through the property tests
PIPES = ("fill_mask", "trf_ner", "trf_textcat", "trf_similarity")
WIDTH = 128  # hidden size of the tiny checkpoints
TOP_K = 5

# Pieces that break naive text handling: control chars, NUL, combining marks, ZWJ emoji,
# right-to-left text and overrides, odd whitespace, non-characters, very long tokens.
NASTY = [
    "\x00", "\x00\x00 \x00", "\x01\x1b[31m\x7f", "\u0301", "e\u0301\u0301\u0301\u0301", "Z\u0351\u0352\u0357\u035b",
    "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🤖", "\U0001f600" * 7, "שָׁלוֹם", "مرحبا بالعالم", "\u202eevil\u202c",
    "\u200f\u200e", "\u3000", "\u00a0\u2028\u2029", "\t\n\r\x0b\x0c", "\ufeff", "\ufffe\uffff", "\U0010ffff",
    "a" * 700, "x" * 3000, "[[MASK]]", "<mask>", "[CLS] [SEP] [PAD] [UNK]", "...", "   ", "\n" * 20,
    "paris", "the capital of france", "Ünïcödé", "中文字符测试", "日本語のテキスト", "ﷺ", "𒐫",
]


@contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging forever (e.g. a deadlocked worker process)."""

    def handler(signum, frame):
        raise TimeoutError(f"no result after {seconds}s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def nlp(bert_checkpoint, request):
    spacy.util.fix_random_seed(0)
    pipeline = spacy.blank("en")
    pipeline.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    for pipe in PIPES:
        pipeline.add_pipe(pipe)
    train(pipeline, ner_examples(pipeline) + cat_examples(pipeline), 2)
    yield pipeline
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nhardening cases run: {dict(CASES)} (total {sum(CASES.values())}); {SEEN}")


@pytest.fixture(scope="module")
def mask(nlp):
    return nlp.get_pipe("fill_mask").mask_token


def hostile_text(mask_token: str):
    """Text built from arbitrary Unicode, nasty pieces and free-standing mask tokens.
    Returns (text, number of free-standing masks) - each of those must be one spaCy token."""
    piece = st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=40),  # any code point incl. controls, NUL
        st.text(st.characters(codec="utf-8", categories=["Mn", "Me", "Cc", "Cf", "Zs", "So"]), max_size=15),
        st.sampled_from(NASTY),
        st.just(mask_token),
    )
    joiner = st.sampled_from(["", " ", "  ", "\n", "\t"])

    @st.composite
    def build(draw):
        parts, n_masks = [], 0
        for _ in range(draw(st.integers(0, 30))):
            if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
                parts.append(f" {mask_token} ")  # free-standing: must be one mask token
                n_masks += 1
            else:
                parts.append(draw(piece))
            parts.append(draw(joiner))
        return "".join(parts), n_masks

    return build()


def check_doc(nlp, doc, n_free_masks: int = 0) -> None:
    """Every output of the five pipes is well-formed."""
    fill_mask = nlp.get_pipe("fill_mask")
    mask_token, vocab_size = fill_mask.mask_token, fill_mask.head.config.vocab_size
    text = doc.text
    SEEN["max_chars"] = max(SEEN["max_chars"], len(text))
    SEEN["masks"] += len(doc._.fill_mask or [])
    # fill_mask: exactly one entry per mask token, in doc order, each a well-formed top-k list.
    mask_tokens = [t for t in doc if t.text == mask_token]
    assert len(mask_tokens) >= n_free_masks
    assert doc._.fill_mask is not None and len(doc._.fill_mask) == len(mask_tokens)
    trf = doc._.trf_data
    flat_ids = trf.wordpieces.input_ids.reshape(-1)
    for token, entry in zip(mask_tokens, doc._.fill_mask):
        assert token._.fill_mask is entry
        # top_k predictions if some window kept the mask's wordpiece, none if truncation cut it off.
        pieces = trf.align[token.i].dataXd.ravel().tolist() if token.i < len(trf.align) else []
        in_a_window = any(int(flat_ids[f]) == fill_mask.tokenizer.mask_token_id for f in pieces)
        assert len(entry) == (TOP_K if in_a_window else 0)
        scores = [p["score"] for p in entry]
        assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
        assert scores == sorted(scores, reverse=True)
        for p in entry:
            assert 0 <= p["token"] < vocab_size and isinstance(p["token_str"], str)
            assert p["sequence"] == text[: token.idx] + p["token_str"].strip() + text[token.idx + len(token) :]
    for token in doc:
        if token.text != mask_token:
            assert token._.fill_mask is None
    # trf_ner: entities inside the doc, ordered, not overlapping.
    end = 0
    for ent in doc.ents:
        assert 0 <= ent.start < ent.end <= len(doc)
        assert 0 <= ent.start_char < ent.end_char <= len(text) and ent.start_char >= end
        assert ent.label_ in nlp.get_pipe("trf_ner").labels
        end = ent.end_char
    # trf_textcat: one score per label, in [0, 1], summing to 1 (also for empty docs).
    assert set(doc.cats) == set(nlp.get_pipe("trf_textcat").labels)
    assert all(0.0 <= v <= 1.0 for v in doc.cats.values())
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
    # trf_similarity: finite vectors of the model's width, similarities in [-1, 1].
    assert doc.vector.shape == (WIDTH,) and numpy.isfinite(doc.vector).all()
    assert doc.has_vector is bool(numpy.any(doc.vector))  # the hook's answer, not the vocab's (no vectors)
    assert doc.tensor.shape == (len(doc), WIDTH) and numpy.isfinite(doc.tensor).all()
    if len(doc):
        picks = {0, len(doc) - 1, len(doc) // 2} | {t.i for t in mask_tokens[:3]}
        for i in picks:
            assert doc[i].vector.shape == (WIDTH,) and numpy.isfinite(doc[i].vector).all()
        span = doc[len(doc) // 3 : max(len(doc) // 3 + 1, 2 * len(doc) // 3)]
        assert span.vector.shape == (WIDTH,) and numpy.isfinite(span.vector).all()
        for sim in (doc.similarity(doc), doc[0].similarity(doc[-1]), span.similarity(doc)):
            assert math.isfinite(sim) and -1.0 - 1e-5 <= sim <= 1.0 + 1e-5


# -- 1. property-based: arbitrary Unicode, any number/position of masks, 0..~4k chars ----------
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
@example(data=None)  # hypothesis's explicit cases below: empty and whitespace-only docs
def test_any_text_single_doc(nlp, mask, data):
    if data is None:
        texts = [("", 0), (" ", 0), ("\n\t \u3000", 0), ("\x00", 0), (mask, 1), (f"{mask} {mask}", 2)]
    else:
        texts = [data.draw(hostile_text(mask))]
    for text, n_masks in texts:
        doc = nlp(text)
        assert doc.text == text
        check_doc(nlp, doc, n_masks)
        CASES["single doc"] += 1


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_texts_batched_match_single(nlp, mask, data):
    """A batch mixing empty, huge and masked docs gives every doc the output it gets alone."""
    items = data.draw(st.lists(hostile_text(mask), min_size=1, max_size=6))
    texts = [t for t, _ in items]
    batch_size = data.draw(st.integers(1, 4))
    batched = list(nlp.pipe(texts, batch_size=batch_size))
    for (text, n_masks), doc in zip(items, batched):
        check_doc(nlp, doc, n_masks)
        alone = nlp(text)
        assert [[p["token"] for p in e][:1] for e in doc._.fill_mask] == [
            [p["token"] for p in e][:1] for e in alone._.fill_mask
        ]
        numpy.testing.assert_allclose(doc.vector, alone.vector, atol=1e-4)
        numpy.testing.assert_allclose(list(doc.cats.values()), list(alone.cats.values()), atol=1e-4)
    CASES["batched doc"] += len(texts)


def test_100k_char_doc(nlp, mask):
    """One explicit 100,000-character document: masks everywhere, nasty pieces, one 3k-char token."""
    pieces, i = [], 0
    while sum(map(len, pieces)) < 100_000:
        pieces.append(NASTY[i % len(NASTY)] if i % 7 else mask)
        pieces.append(" paris is a city in france " if i % 3 else " ")
        i += 1
    text = "".join(pieces)[:100_000]
    doc = nlp(text)
    assert len(doc.text) == 100_000
    check_doc(nlp, doc)
    assert len(doc._.fill_mask) > 100
    assert all(len(e) == TOP_K for e in doc._.fill_mask)  # strided windows cover every mask
    CASES["100k-char doc"] += 1


def test_glued_masks_are_not_mask_tokens(nlp, mask):
    """'[MASK][MASK]' or 'x[MASK]' is not split by spaCy's tokenizer: no mask token, no entry,
    no crash (documented in docs/TROUBLESHOOTING.md). Free-standing or punctuated masks work."""
    doc = nlp(f"{mask}{mask} a{mask}b")
    assert doc._.fill_mask == [] and not any(t.text == mask for t in doc)
    doc = nlp(f"is {mask}. ({mask}) {mask}, and {mask}!")
    check_doc(nlp, doc)
    assert len(doc._.fill_mask) == 4
    CASES["explicit"] += 2


def test_empty_doc_cats_sum_to_one_alone_and_in_batch(nlp):
    """spaCy's textcat gives all-zero scores to a batch of only empty docs; trf_textcat gives
    an empty doc the same scores alone as inside a mixed batch."""
    alone = nlp("").cats
    in_batch = list(nlp.pipe(["", "a busy old market", ""]))[0].cats
    assert sum(alone.values()) == pytest.approx(1.0, abs=1e-5)
    numpy.testing.assert_allclose(list(alone.values()), list(in_batch.values()), atol=1e-6)
    CASES["explicit"] += 1


# -- 2. n_process=2 ------------------------------------------------------------------------------
def outputs(doc):
    return {
        "text": doc.text,
        "fill_mask": [[(p["token"], p["sequence"]) for p in e] for e in doc._.fill_mask],
        "scores": [[p["score"] for p in e] for e in doc._.fill_mask],
        "vector": doc.vector,
        "has_vector": doc.has_vector,
        "token_vectors": [t.vector for t in doc],
        "span_vector": doc[: max(1, len(doc) // 2)].vector if len(doc) else None,
        "similarity": doc.similarity(doc[: max(1, len(doc) // 2)]) if len(doc) else None,
        "cats": doc.cats,
        "ents": [(e.start_char, e.end_char, e.label_) for e in doc.ents],
    }


def test_n_process_2_matches_one_process(nlp, mask):
    texts = [
        f"the capital of {mask} is paris", "", f"{mask} {mask} city", " ", "a quiet street in rome",
        f"london {mask} berlin \x00 🤖 שָׁלוֹם", "x" * 2000, f"paris is a city in france . {mask} " * 40,
    ] * 2
    one = [outputs(d) for d in nlp.pipe(texts, batch_size=3)]
    with time_limit(240), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W109: spaCy can't serialize user hooks; we restore them
        two = [outputs(restore_vector_hooks(d)) for d in nlp.pipe(texts, batch_size=3, n_process=2)]
    assert [o["text"] for o in two] == texts
    for a, b in zip(one, two):
        assert a["fill_mask"] == b["fill_mask"]
        assert a["ents"] == b["ents"] and a["has_vector"] == b["has_vector"]
        for sa, sb in zip(a["scores"], b["scores"]):
            numpy.testing.assert_allclose(sa, sb, atol=1e-5)
        numpy.testing.assert_allclose(a["vector"], b["vector"], atol=1e-5)
        for va, vb in zip(a["token_vectors"], b["token_vectors"]):
            numpy.testing.assert_allclose(va, vb, atol=1e-5)
        if a["span_vector"] is not None:
            numpy.testing.assert_allclose(a["span_vector"], b["span_vector"], atol=1e-5)
            assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-5)
        numpy.testing.assert_allclose(list(a["cats"].values()), list(b["cats"].values()), atol=1e-5)
    CASES["n_process=2 doc"] += len(texts)


def test_vector_hooks_survive_doc_bytes(nlp, mask):
    """Doc.to_bytes drops user hooks; restore_vector_hooks brings back the trf_similarity
    vectors from doc.tensor and doc._ (what survives serialization)."""
    doc = nlp(f"the capital of {mask} is paris")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = spacy.tokens.Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert "vector" not in back.user_hooks
    restore_vector_hooks(back)
    numpy.testing.assert_allclose(back.vector, doc.vector, atol=1e-7)
    numpy.testing.assert_allclose(back[1:3].vector, doc[1:3].vector, atol=1e-7)
    numpy.testing.assert_allclose(back[2].vector, doc[2].vector, atol=1e-7)
    assert back.similarity(back[1:3]) == pytest.approx(doc.similarity(doc[1:3]))
    untouched = spacy.blank("en")("no similarity here")
    assert restore_vector_hooks(untouched).user_hooks == {}


# -- 3. memory: short version of `python -m bench pipes memory` ---------------------------------------------
def test_memory_flat_over_docs(bert_checkpoint):
    from bench.pipes import measure

    result = measure(str(bert_checkpoint), n=1500, checkpoints=(500, 1500), pipes=("fill_mask", "trf_similarity"))
    # Loose bound: the short run still includes allocator warm-up; the bench reports the 10k->100k figure.
    assert result["growth_pct"] < 10.0, result
    CASES["memory doc"] += 1500


# -- 4. safe loading ------------------------------------------------------------------------------
class _Exploit:
    """Unpickling this would create `marker` (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def saved_pipeline(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "pipeline"
    nlp.to_disk(path)
    return path


def copy_pipeline(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_pipes_write_no_pickle(saved_pipeline):
    """Everything our pipes write is safetensors, JSON or msgpack - never a pickle."""
    ours = [p for name in PIPES for p in (saved_pipeline / name).rglob("*") if p.is_file()]
    assert ours
    for path in ours:
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path} looks like a pickle"
        assert not data.startswith(b"PK\x03\x04"), f"{path} looks like a torch.save zip"
        if path.suffix == ".safetensors":
            assert json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
        elif path.suffix == ".json" or path.name == "cfg":
            json.loads(path.read_text(encoding="utf8"))
        else:
            srsly.msgpack_loads(data)  # trf_ner / trf_textcat model and moves files


def test_pickle_planted_as_head_weights_is_refused(saved_pipeline, tmp_path):
    pipeline = copy_pipeline(saved_pipeline, tmp_path / "pipeline")
    marker = tmp_path / "pwned"
    weights = pipeline / "fill_mask" / "head" / "head.safetensors"
    weights.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(SpacyMlmError, match=r"head\.safetensors is not a valid safetensors file"):
        spacy.load(pipeline)
    assert not marker.exists()


def test_pickle_planted_in_transformer_weights_is_refused(saved_pipeline, tmp_path):
    """spacy-transformers stores the encoder with torch.save inside transformer/model and reads
    it with torch.load (hf_shim.HFShim.from_bytes), without weights_only. torch >= 2.6 defaults
    to weights_only=True, which refuses the exploit; we do not control that code path."""
    import torch

    pipeline = copy_pipeline(saved_pipeline, tmp_path / "pipeline")
    marker = tmp_path / "pwned"
    model_file = pipeline / "transformer" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    node, i = next((n, i) for n, shims in enumerate(msg["shims"]) for i, _ in enumerate(shims))
    shim = srsly.msgpack_loads(msg["shims"][node][i])  # HFShim.to_bytes: config, tokenizer, state
    buf = io.BytesIO()
    torch.save(_Exploit(marker), buf)
    shim["state"] = buf.getvalue()
    msg["shims"][node][i] = srsly.msgpack_dumps(shim)
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
        spacy.load(pipeline)
    assert not marker.exists()


# -- 5. the error catalogue: errors without a test elsewhere (docs/TROUBLESHOOTING.md) -----------
def test_error_bad_top_k_and_mlm_rate(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    with pytest.raises(SpacyMlmError, match="top_k must be at least 1, got 0"):
        nlp.add_pipe("fill_mask", config={"top_k": 0})
    with pytest.raises(SpacyMlmError, match=r"mlm_rate must be in \[0, 1\), got 1.5"):
        nlp.add_pipe("fill_mask", config={"mlm_rate": 1.5})


def test_error_targets_match_nothing(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"targets": [""]})
    with pytest.raises(SpacyMlmError, match="None of the fill_mask targets"):
        nlp.initialize()


def test_error_bad_pooling():
    nlp = spacy.blank("en")
    with pytest.raises(SpacyMlmError, match="pooling='sum' is not supported"):
        nlp.add_pipe("trf_similarity", config={"pooling": "sum"})


def test_error_upstream_not_a_transformer(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", name="transformer")
    nlp.add_pipe("trf_similarity")
    with pytest.raises(SpacyMlmError, match="that component is a Sentencizer"):
        nlp.initialize()


def test_error_doc_without_trf_data(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask")
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    mask = nlp.get_pipe("fill_mask").mask_token
    with nlp.select_pipes(disable=["transformer"]):
        with pytest.raises(SpacyMlmError, match="'fill_mask' got a doc without doc._.trf_data"):
            nlp(f"a {mask}")
        with pytest.raises(SpacyMlmError, match="'trf_similarity' got a doc without doc._.trf_data"):
            nlp.get_pipe("trf_similarity")(nlp.make_doc("a b"))


def test_error_save_before_initialize(bert_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask")
    with pytest.raises(SpacyMlmError, match="Cannot save 'fill_mask' before nlp.initialize"):
        nlp.get_pipe("fill_mask").to_bytes()


def test_error_incomplete_and_mismatched_head_dir(saved_pipeline, tmp_path):
    pipeline = copy_pipeline(saved_pipeline, tmp_path / "a")
    (pipeline / "fill_mask" / "head" / "head.json").unlink()
    with pytest.raises(SpacyMlmError, match=r"head\.json is missing: the fill_mask directory is incomplete"):
        spacy.load(pipeline)
    pipeline = copy_pipeline(saved_pipeline, tmp_path / "b")
    from safetensors.torch import load_file, save_file

    weights = pipeline / "fill_mask" / "head" / "head.safetensors"
    state = load_file(str(weights))
    state["unexpected.weight"] = next(iter(state.values())).clone()
    save_file(state, str(weights))
    with pytest.raises(SpacyMlmError, match=r"head\.safetensors does not match the head config"):
        spacy.load(pipeline)


def test_error_checkpoint_dir_without_config(bert_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"checkpoint": str(tmp_path / "empty")})
    with pytest.raises(SpacyMlmError, match="empty.*it has no config.json"):
        nlp.initialize()


def test_error_trf_textcat_multilabel_data_message_names_doc(bert_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("trf_textcat")
    examples = [Example.from_dict(nlp.make_doc("a b"), {"cats": {"POS": 1.0, "OLD": 1.0}})]
    with pytest.raises(SpacyMlmError, match=r"the doc 'a b' has 2: \['POS', 'OLD'\]"):
        nlp.initialize(lambda: examples)


def test_error_tokenizer_without_mask_token(bert_checkpoint, tmp_path):
    import shutil

    checkpoint = tmp_path / "no_mask"
    shutil.copytree(bert_checkpoint, checkpoint)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = checkpoint / name
        if path.exists():
            cfg = json.loads(path.read_text(encoding="utf8"))
            cfg["mask_token"] = None
            path.write_text(json.dumps(cfg), encoding="utf8")
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("fill_mask")
    with pytest.raises(SpacyMlmError, match="no_mask.* has no mask token"):
        nlp.initialize()


def test_error_checkpoint_not_loadable(bert_checkpoint, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}", encoding="utf8")
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"checkpoint": str(bad)})
    with pytest.raises(SpacyMlmError, match="Could not load an MLM checkpoint from .*bad.*Check the path"):
        nlp.initialize()
