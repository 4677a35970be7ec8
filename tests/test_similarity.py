"""trf_similarity: parity with HF mean pooling, hooks for Doc/Span/Token, edge cases."""

import numpy
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from .conftest import make_nlp

TEXTS = ["the capital of france is paris", "a quiet street near the old museum in rome", "berlin"]


def hf_pooled(checkpoint, text, pooling="mean"):
    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModel.from_pretrained(str(checkpoint)).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    if pooling == "cls":
        return hidden[0, 0].numpy()
    if pooling == "max":
        return hidden[0].max(dim=0).values.numpy()
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))[0].numpy()


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert"])
@pytest.mark.parametrize("normalize", [True, False])
def test_doc_vector_parity_mean_pooling(arch, normalize, checkpoints):
    nlp = make_nlp(checkpoints[arch], ("trf_similarity", {"normalize": normalize}))
    for text in TEXTS:
        ref = hf_pooled(checkpoints[arch], text)
        if normalize:
            ref = ref / numpy.linalg.norm(ref)
        numpy.testing.assert_allclose(nlp(text).vector, ref, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_doc_vector_other_poolings(pooling, bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, ("trf_similarity", {"pooling": pooling, "normalize": False}))
    numpy.testing.assert_allclose(nlp(TEXTS[1]).vector, hf_pooled(bert_checkpoint, TEXTS[1], pooling), atol=1e-5)


def test_similarity_hooks(bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, "trf_similarity")
    a, b = nlp(TEXTS[0]), nlp(TEXTS[1])
    cos = float(numpy.dot(a.vector, b.vector) / (numpy.linalg.norm(a.vector) * numpy.linalg.norm(b.vector)))
    assert a.similarity(b) == pytest.approx(cos, abs=1e-6)
    assert a.similarity(b) == pytest.approx(b.similarity(a), abs=1e-6)
    assert a.similarity(a) == pytest.approx(1.0, abs=1e-5)
    assert a.has_vector and a[1:3].has_vector and a[0].has_vector
    assert numpy.linalg.norm(a.vector) == pytest.approx(1.0, abs=1e-5)
    # Token vector = mean of its wordpieces' hidden states; span vector = mean of token vectors.
    trf = a._.trf_data
    flat = trf.model_output.last_hidden_state.reshape(-1, trf.width)
    pieces = trf.align[1].dataXd.ravel()
    raw = flat[pieces].mean(axis=0)
    numpy.testing.assert_allclose(a[1].vector, raw / numpy.linalg.norm(raw), atol=1e-5)
    span_raw = a.tensor[1:3].mean(axis=0)
    numpy.testing.assert_allclose(a[1:3].vector, span_raw / numpy.linalg.norm(span_raw), atol=1e-5)
    assert a[1].similarity(a[1:3]) == pytest.approx(
        float(numpy.dot(a[1].vector, a[1:3].vector)), abs=1e-5
    )
    assert a[0:2].similarity(b) == pytest.approx(float(numpy.dot(a[0:2].vector, b.vector)), abs=1e-5)


@pytest.mark.parametrize("text", ["", " ", "\n\n", "  paris  "])
def test_empty_and_whitespace_docs(text, bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, "trf_similarity")
    doc = nlp(text)
    assert doc.vector.shape == (128,)
    assert numpy.isfinite(doc.vector).all()
    assert doc.has_vector == bool(text.strip())
    other = nlp("paris")
    assert -1.0 <= doc.similarity(other) <= 1.0 + 1e-6
    for token in doc:
        assert token.vector.shape == (128,)
        assert token.has_vector == bool(token.text.strip())
    if not text.strip():
        assert doc.similarity(other) == 0.0


def test_batch_matches_single(bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, "trf_similarity")
    texts = ["", "paris", "the capital of france is paris " * 10, "  "]
    for doc, text in zip(nlp.pipe(texts, batch_size=3), texts):
        numpy.testing.assert_allclose(doc.vector, nlp(text).vector, atol=1e-5)


LONG_TEXT = " ".join(TEXTS[:2] * 6) + " berlin"  # 91 tokens: 6 windows of 24 tokens, stride 16
WINDOWED = {"get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 24, "stride": 16}}


def by_hand(trf, n_tokens):
    """Reference for long docs, with loops: per token, the window where its wordpieces are best
    centred (ties: earlier); the doc pools those once plus the first/last window's outer specials."""
    seq_len = trf.wordpieces.input_ids.shape[1]
    lengths = trf.wordpieces.attention_mask.sum(axis=1)
    chosen = {}
    for i in range(n_tokens):
        per_window = {}
        for flat in trf.align[i].dataXd.ravel().tolist():
            per_window.setdefault(flat // seq_len, []).append(flat)
        if per_window:
            margins = {w: min(min(f % seq_len, int(lengths[w]) - 1 - f % seq_len) for f in fs) for w, fs in per_window.items()}
            best = max(sorted(per_window), key=margins.get)  # max keeps the first of equal margins
            chosen[i] = per_window[best]
    aligned = {f for i in range(n_tokens) for f in trf.align[i].dataXd.ravel().tolist()}
    last = len(lengths) - 1
    first_hit = min(f for f in aligned if f < seq_len)
    last_hit = max(f for f in aligned if f // seq_len == last)
    specials = [p for p in range(first_hit)] + [last * seq_len + p for p in range(last_hit % seq_len + 1, int(lengths[last]))]
    return chosen, sorted({f for fs in chosen.values() for f in fs} | set(specials))


def test_long_doc_vectors_count_each_wordpiece_once(bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, ("trf_similarity", {"normalize": False}), transformer_config=WINDOWED)
    doc = nlp(LONG_TEXT)
    trf = doc._.trf_data
    assert trf.wordpieces.input_ids.shape[0] > 3  # really several overlapping windows
    flat = trf.model_output.last_hidden_state.reshape(-1, trf.width)
    chosen, pooled = by_hand(trf, len(doc))
    # Each wordpiece of the text once, plus one [CLS] and one [SEP]: what a single pass would see.
    tok = AutoTokenizer.from_pretrained(str(bert_checkpoint))
    assert len(pooled) == len(tok(LONG_TEXT)["input_ids"])
    numpy.testing.assert_allclose(doc.vector, flat[pooled].mean(axis=0), atol=1e-5)
    for i, token in enumerate(doc):
        numpy.testing.assert_allclose(token.vector, flat[chosen[i]].mean(axis=0), atol=1e-5)
    span = doc[30:50]  # crosses window borders
    numpy.testing.assert_allclose(span.vector, numpy.stack([flat[chosen[i]].mean(0) for i in range(30, 50)]).mean(0), atol=1e-5)
    # A token near a window edge takes the window where it has context on both sides.
    seq_len = trf.wordpieces.input_ids.shape[1]
    in_two = [i for i in range(len(doc)) if len({f // seq_len for f in trf.align[i].dataXd.ravel()}) > 1]
    assert in_two and all(len(chosen[i]) < len(trf.align[i].dataXd.ravel()) for i in in_two)


@pytest.mark.parametrize("pooling", ["max", "cls"])
def test_long_doc_other_poolings(pooling, bert_checkpoint):
    nlp = make_nlp(bert_checkpoint, ("trf_similarity", {"pooling": pooling, "normalize": False}), transformer_config=WINDOWED)
    doc = nlp(LONG_TEXT)
    trf = doc._.trf_data
    hidden = trf.model_output.last_hidden_state
    _, pooled = by_hand(trf, len(doc))
    expected = hidden[0, 0] if pooling == "cls" else hidden.reshape(-1, trf.width)[pooled].max(axis=0)
    numpy.testing.assert_allclose(doc.vector, expected, atol=1e-5)
