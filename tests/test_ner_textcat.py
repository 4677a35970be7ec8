"""trf_ner / trf_textcat / trf_textcat_multilabel: train with no further config, errors."""

import random

import pytest
import spacy
from spacy.training import Example

from spacy_mlm import SpacyMlmError

NER_DATA = [
    ("paris is a city in france", [(0, 5, "LOC"), (19, 25, "LOC")]),
    ("the museum in berlin is old", [(14, 20, "LOC")]),
    ("a quiet street near the river", []),
    ("london and rome are large", [(0, 6, "LOC"), (11, 15, "LOC")]),
]
CAT_DATA = [
    ("a beautiful quiet park", "POS"),
    ("a busy old market", "NEG"),
    ("the beautiful new museum", "POS"),
    ("the busy old station", "NEG"),
]


def nlp_with(checkpoint, pipe, transformer_config=None):
    nlp = spacy.blank("en")
    config = {"model": {"name": str(checkpoint)}}
    if transformer_config:
        config["model"].update(transformer_config)
    nlp.add_pipe("transformer", config=config)
    nlp.add_pipe(pipe)
    return nlp


def long_ner_example():
    """The NER sentences joined into one doc many windows long, with their entities."""
    text, ents = "", []
    for t, t_ents in NER_DATA * 3:
        ents += [(len(text) + s, len(text) + e, label) for s, e, label in t_ents]
        text += t + " . "
    return text.strip(), ents


def ner_examples(nlp, with_long=False):
    data = NER_DATA + ([long_ner_example()] if with_long else [])
    return [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in data]


def cat_examples(nlp, labels=("POS", "NEG")):
    return [Example.from_dict(nlp.make_doc(t), {"cats": {lb: float(lb == c) for lb in labels}}) for t, c in CAT_DATA]


def train(nlp, examples, steps):
    optimizer = nlp.initialize(lambda: examples)
    losses_per_step = []
    rng = random.Random(0)
    for _ in range(steps):
        rng.shuffle(examples)
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses, drop=0.0)
        losses_per_step.append(sum(v for k, v in losses.items() if k != "transformer"))
    return losses_per_step


def train_on_small_windows(checkpoint, pipe, steps):
    """`pipe` trained on strided windows of 8 tokens (stride 6), so long docs span many windows."""
    spacy.util.fix_random_seed(0)
    spans = {"get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 8, "stride": 6}}
    nlp = nlp_with(checkpoint, pipe, transformer_config=spans)
    losses = train(nlp, ner_examples(nlp, with_long=True), steps)
    return nlp, losses


@pytest.fixture(scope="module")
def trained_ner(bert_checkpoint):
    return train_on_small_windows(bert_checkpoint, "trf_ner", 200)


def test_trf_ner_trains_with_no_further_config(trained_ner):
    nlp, losses = trained_ner
    assert sum(losses[-5:]) < sum(losses[:5]) / 5
    assert nlp.evaluate(ner_examples(nlp, with_long=True))["ents_f"] == pytest.approx(1.0)
    assert [e.text for e in nlp("paris is a city in france").ents] == ["paris", "france"]
    assert nlp("").ents == ()
    assert nlp("   ").ents == ()


def test_trf_ner_entities_across_window_borders(trained_ner):
    """A doc many windows long: every entity is found, those cut by window borders too."""
    nlp, _ = trained_ner
    text, ents = long_ner_example()
    doc = nlp(text)
    assert len(doc) > 60
    # Token starts of the windows (8 tokens, stride 6): some entities sit in window overlaps.
    overlaps = {i for start in range(6, len(doc), 6) for i in range(start, min(start + 2, len(doc)))}
    gold = [doc.char_span(s, e) for s, e, _ in ents]
    assert any(span.start in overlaps for span in gold)
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == ents


def test_trf_textcat_trains(bert_checkpoint):
    spacy.util.fix_random_seed(0)
    nlp = nlp_with(bert_checkpoint, "trf_textcat")
    losses = train(nlp, cat_examples(nlp), 30)
    assert losses[-1] < losses[0]
    for text, label in CAT_DATA:
        cats = nlp(text).cats
        assert max(cats, key=cats.get) == label
        assert sum(cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert nlp.evaluate(cat_examples(nlp))["cats_score"] == pytest.approx(1.0)


def test_trf_textcat_multilabel_trains(bert_checkpoint):
    spacy.util.fix_random_seed(0)
    nlp = nlp_with(bert_checkpoint, "trf_textcat_multilabel")
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {"POS": float(c == "POS"), "OLD": float("old" in t)}})
        for t, c in CAT_DATA
    ]
    train(nlp, examples, 40)
    cats = nlp("a busy old market").cats
    assert cats["OLD"] > 0.5 and cats["POS"] < 0.5


def test_trf_ner_without_transformer():
    nlp = spacy.blank("en")
    nlp.add_pipe("trf_ner")
    with pytest.raises(SpacyMlmError, match="needs a 'transformer' component"):
        nlp.initialize(lambda: ner_examples(nlp))


def test_trf_textcat_given_multilabel_data(bert_checkpoint):
    nlp = nlp_with(bert_checkpoint, "trf_textcat")
    examples = [Example.from_dict(nlp.make_doc("a b"), {"cats": {"POS": 1.0, "OLD": 1.0}})]
    with pytest.raises(SpacyMlmError, match="trf_textcat_multilabel"):
        nlp.initialize(lambda: examples)


def test_dev_labels_absent_from_training(bert_checkpoint):
    nlp = nlp_with(bert_checkpoint, "trf_ner")
    train(nlp, ner_examples(nlp), 1)
    dev = [Example.from_dict(nlp.make_doc("apple sells phones"), {"entities": [(0, 5, "ORG")]})]
    with pytest.warns(UserWarning, match=r"labels absent from the training data: \['ORG'\]"):
        nlp.evaluate(dev)


def _two_updates(checkpoint, head_lr_scale):
    """Weights of the NER head and of the encoder before/after one update."""
    from thinc.api import Adam

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("trf_ner", config={"head_lr_scale": head_lr_scale})
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    head = [n for n in nlp.get_pipe("trf_ner").model.walk() if n.param_names]
    encoder = nlp.get_pipe("transformer").model.transformer
    before = ([n.get_param(p).copy() for n in head for p in n.param_names],
              [p.detach().clone() for p in encoder.parameters()])
    optimizer = Adam(1e-4, grad_clip=0.0)
    # Two updates: the head's output layer starts at zero, so the encoder gets no gradient at first.
    nlp.update(examples, sgd=optimizer, drop=0.0)
    nlp.update(examples, sgd=optimizer, drop=0.0)
    after = ([n.get_param(p).copy() for n in head for p in n.param_names],
             [p.detach().clone() for p in encoder.parameters()])
    head_step = max(float(abs(a - b).max()) for a, b in zip(after[0], before[0]))
    encoder_step = max(float((a - b).abs().max()) for a, b in zip(after[1], before[1]))
    return head_step, encoder_step


def test_trf_ner_head_lr_scale(bert_checkpoint):
    """head_lr_scale multiplies the head's steps (Adam's steps are about lr per weight), while the
    encoder, updated by the transformer component at the optimizer's rate, takes lr-sized steps."""
    head_1, encoder_1 = _two_updates(bert_checkpoint, 1.0)
    head_10, encoder_10 = _two_updates(bert_checkpoint, 10.0)
    assert head_10 / head_1 == pytest.approx(10.0, rel=0.1)
    assert 1e-4 <= head_1 <= 2.1e-4  # two steps of at most lr each
    assert encoder_1 == pytest.approx(1e-4, rel=0.05) and encoder_10 == pytest.approx(1e-4, rel=0.05)
    assert nlp_with(bert_checkpoint, "trf_ner").get_pipe("trf_ner").head_lr_scale == 1.0  # the default: safe with any optimizer
    with pytest.raises(ValueError, match="head_lr_scale"):
        spacy.blank("en").add_pipe("trf_ner", config={"head_lr_scale": 0})


def test_trf_textcat_ignores_docs_without_cats(bert_checkpoint):
    """In a multi-task corpus, a doc with no cats gives no textcat loss or gradient (spaCy's
    exclusive textcat would pull it towards all-zero truths)."""
    nlp = nlp_with(bert_checkpoint, "trf_textcat")
    examples = cat_examples(nlp)
    nlp.initialize(lambda: examples)
    textcat = nlp.get_pipe("trf_textcat")
    unlabeled = Example.from_dict(nlp.make_doc(examples[0].reference.text), {})
    batch = [examples[0], unlabeled]
    scores = textcat.model.predict([nlp.get_pipe("transformer")(eg.predicted) for eg in batch])
    _, d_scores = textcat.get_loss(batch, scores)
    assert float(abs(d_scores[1]).sum()) == 0.0 and float(abs(d_scores[0]).sum()) > 0.0


def test_trf_textcat_score_skips_docs_without_cats(bert_checkpoint):
    nlp = nlp_with(bert_checkpoint, "trf_textcat")
    examples = cat_examples(nlp)
    nlp.initialize(lambda: examples)
    unlabeled = [Example.from_dict(nlp.make_doc(eg.reference.text), {}) for eg in examples]
    assert nlp.evaluate(examples + unlabeled)["cats_score"] == nlp.evaluate(examples)["cats_score"]


def test_trf_beam_ner_trains_and_round_trips(bert_checkpoint, tmp_path):
    """Beam search on the shared encoder: trains, predicts, and loads back with the same beam and
    the same entities. (How well beam NER learns is spaCy's; on a 4-sentence set with a tiny random
    encoder it is too unsteady to assert, so WNUT-17 figures are in BENCHMARKS.md.)"""
    spacy.util.fix_random_seed(0)
    nlp = nlp_with(bert_checkpoint, "trf_beam_ner")
    ner = nlp.get_pipe("trf_beam_ner")
    assert ner.cfg["beam_width"] == 4 and ner.head_lr_scale == 1.0
    examples = ner_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    head = [n for n in ner.model.walk() if n.param_names]
    before = [n.get_param(p).copy() for n in head for p in n.param_names if n.has_param(p)]
    for _ in range(20):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    after = [n.get_param(p) for n in head for p in n.param_names if n.has_param(p)]
    assert any(float(abs(a - b).max()) > 0 for a, b in zip(after, before))
    texts = [t for t, _ in NER_DATA] + ["", "   "]
    predicted = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    assert predicted[-2:] == [[], []]
    assert {label for ents in predicted for _, _, label in ents} <= {"LOC"}
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("trf_beam_ner").cfg["beam_width"] == 4
    assert [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)] == predicted
