"""spacy_mlm.reduce_first.v1: thinc's reduce_first, plus zeros for tokens without wordpieces."""

import numpy
import pytest
from spacy.util import registry
from thinc.api import reduce_first as thinc_reduce_first
from thinc.types import Ragged


def test_equals_thinc_reduce_first_when_every_token_has_wordpieces():
    ours = registry.layers.get("spacy_mlm.reduce_first.v1")()
    ref = thinc_reduce_first()
    X = numpy.random.default_rng(0).random((7, 4), dtype="f")
    lengths = numpy.array([2, 1, 4], dtype="i")
    y, back = ours(Ragged(X, lengths), is_train=True)
    y_ref, back_ref = ref(Ragged(X, lengths), is_train=True)
    numpy.testing.assert_array_equal(y, y_ref)
    numpy.testing.assert_array_equal(y, X[[0, 2, 3]])
    dY = numpy.random.default_rng(1).random((3, 4), dtype="f")
    numpy.testing.assert_array_equal(back(dY).dataXd, back_ref(dY).dataXd)


def test_token_without_wordpieces_gets_zeros_and_no_gradient():
    layer = registry.layers.get("spacy_mlm.reduce_first.v1")()
    X = numpy.arange(28, dtype="f").reshape(7, 4)
    lengths = numpy.array([2, 0, 5, 0], dtype="i")
    with pytest.raises(ValueError):  # why ours exists
        thinc_reduce_first()(Ragged(X, lengths), is_train=False)
    y, back = layer(Ragged(X, lengths), is_train=True)
    numpy.testing.assert_array_equal(y, numpy.stack([X[0], numpy.zeros(4), X[2], numpy.zeros(4)]))
    dY = numpy.ones((4, 4), dtype="f") * numpy.array([[1], [2], [3], [4]], dtype="f")
    dX = back(dY)
    assert list(dX.lengths) == [2, 0, 5, 0]
    expected = numpy.zeros_like(X)
    expected[0], expected[2] = 1, 3
    numpy.testing.assert_array_equal(dX.dataXd, expected)


def test_empty_batch():
    y, back = registry.layers.get("spacy_mlm.reduce_first.v1")()(
        Ragged(numpy.zeros((0, 4), dtype="f"), numpy.zeros((0,), dtype="i")), is_train=True)
    assert y.shape == (0, 4)
    assert back(y).dataXd.shape == (0, 4)


def test_trf_ner_with_first_wordpiece_pooling_on_tokens_without_wordpieces(bert_checkpoint):
    """WNUT-17 has tokens the tokenizer drops (zero-width characters): thinc's reduce_first
    crashed training on them, ours trains and tags the entity next to one."""
    import spacy
    from spacy.tokens import Doc
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    ner = nlp.add_pipe("trf_ner", config={"model": {"tok2vec": {"pooling": {"@layers": "spacy_mlm.reduce_first.v1"}}}})
    words = ["paris", "\u200b", "is", "in", "france"]
    doc = Doc(nlp.vocab, words=words)
    examples = [Example.from_dict(doc, {"entities": ["U-LOC", "O", "O", "O", "U-LOC"]})]
    optimizer = nlp.initialize(lambda: examples)
    assert nlp.get_pipe("transformer").model.tokenizer("\u200b", add_special_tokens=False)["input_ids"] == []
    for _ in range(100):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    assert any(node.name == "spacy_mlm.reduce_first" for node in ner.model.walk())
    pred = nlp(Doc(nlp.vocab, words=words))
    assert [(e.text, e.label_) for e in pred.ents] == [("paris", "LOC"), ("france", "LOC")]
