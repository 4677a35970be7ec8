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
