"""trf_tagger_ner: NER as per-token BILUO tagging on the shared transformer."""

import itertools
import re

import numpy
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_mlm import SpacyMlmError
from spacy_mlm.pipes.tagger_ner import allowed_transitions, biluo_tag_names, log_softmax, viterbi, viterbi_batch

from .test_ner_textcat import NER_DATA, long_ner_example, ner_examples, nlp_with, train_on_small_windows

# Valid BILUO, written independently of allowed_transitions: O, U-X, or B-X I-X* L-X, repeated.
VALID_BILUO = re.compile(r"^(?:(?:O|U-\w+|B-(\w+) (?:I-\1 )*L-\1) )*$")


def _is_valid(tags):
    return VALID_BILUO.match("".join(f"{tag} " for tag in tags)) is not None


def test_viterbi_is_the_best_valid_sequence():
    """Against brute force over every tag sequence spaCy accepts as BILUO."""
    tags = biluo_tag_names(["LOC", "PER"])
    allowed = allowed_transitions(tags)
    rng = numpy.random.default_rng(0)
    valid = [seq for seq in itertools.product(range(len(tags)), repeat=4) if _is_valid([tags[i] for i in seq])]
    assert 0 < len(valid) < len(tags) ** 4
    for _ in range(20):
        log_probs = log_softmax(rng.normal(size=(4, len(tags))) * 3)
        best = max(valid, key=lambda seq: sum(log_probs[t, i] for t, i in enumerate(seq)))
        assert tuple(viterbi(log_probs, allowed)) == best
    # Where the per-token argmax is valid, it is the answer.
    peaked = numpy.full((3, len(tags)), -10.0)
    for t, tag in enumerate(["B-PER", "L-PER", "O"]):
        peaked[t, tags.index(tag)] = 0.0
    assert [tags[i] for i in viterbi(peaked, allowed)] == ["B-PER", "L-PER", "O"]
    assert viterbi(numpy.zeros((0, len(tags))), allowed).shape == (0,)


@pytest.mark.parametrize("block_cells", [1 << 16, 6])
def test_viterbi_batch_decodes_each_doc_as_alone(monkeypatch, block_cells):
    """Docs of different lengths (0 to 4 tokens) decoded together, in one padded block or in
    several: each gets the best valid sequence of its own length (brute force), so padding never
    leaks into a shorter doc and results come back in input order."""
    from spacy_mlm.pipes import tagger_ner

    monkeypatch.setattr(tagger_ner, "VITERBI_BLOCK_CELLS", block_cells)
    tags = biluo_tag_names(["LOC", "PER"])
    allowed = allowed_transitions(tags)
    rng = numpy.random.default_rng(1)
    valid = {n: [seq for seq in itertools.product(range(len(tags)), repeat=n) if _is_valid([tags[i] for i in seq])]
             for n in range(1, 5)}
    for _ in range(10):
        lengths = rng.permutation([0, 1, 2, 3, 4, 4, 1])
        batch = [log_softmax(rng.normal(size=(n, len(tags))) * 3).astype("f") for n in lengths]
        decoded = viterbi_batch(batch, allowed)
        for log_probs, got in zip(batch, decoded):
            if len(log_probs) == 0:
                assert got.shape == (0,)
                continue
            best = max(valid[len(log_probs)], key=lambda seq: sum(float(log_probs[t, i]) for t, i in enumerate(seq)))
            assert tuple(got) == best
    assert viterbi_batch([], allowed) == []


def test_allowed_transitions():
    tags = biluo_tag_names(["LOC", "PER"])
    allowed, start = allowed_transitions(tags), len(tags)
    ok = lambda a, b: bool(allowed[tags.index(a) if a else start, tags.index(b) if b else start])  # noqa: E731
    assert ok("B-LOC", "I-LOC") and ok("I-LOC", "L-LOC") and ok("L-LOC", "U-PER") and ok("O", "B-PER")
    assert not ok("B-LOC", "I-PER") and not ok("B-LOC", "O") and not ok("O", "I-LOC") and not ok("U-LOC", "L-LOC")
    assert ok(None, "B-LOC") and not ok(None, "I-LOC") and not ok(None, "L-PER")  # doc start
    assert ok("L-LOC", None) and ok("O", None) and not ok("B-LOC", None) and not ok("I-PER", None)  # doc end


@pytest.fixture(scope="module")
def trained_tagger_ner(bert_checkpoint):
    return train_on_small_windows(bert_checkpoint, "trf_tagger_ner", 200)


def test_trf_tagger_ner_trains_with_no_further_config(trained_tagger_ner):
    nlp, losses = trained_tagger_ner
    ner = nlp.get_pipe("trf_tagger_ner")
    assert ner.labels == ("LOC",) and ner.tags == ["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]
    assert sum(losses[-5:]) < sum(losses[:5]) / 5
    assert nlp.evaluate(ner_examples(nlp, with_long=True))["ents_f"] == pytest.approx(1.0)
    assert [e.text for e in nlp("paris is a city in france").ents] == ["paris", "france"]
    assert [list(doc.ents) for doc in nlp.pipe(["", "   ", ""])] == [[], [], []]
    assert [e.text for e in list(nlp.pipe(["", "london and rome are large"]))[1].ents] == ["london", "rome"]


def test_trf_tagger_ner_entities_across_window_borders(trained_tagger_ner):
    nlp, _ = trained_tagger_ner
    text, ents = long_ner_example()
    doc = nlp(text)
    overlaps = {i for start in range(6, len(doc), 6) for i in range(start, min(start + 2, len(doc)))}
    assert any(doc.char_span(s, e).start in overlaps for s, e, _ in ents)
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == ents


def test_trf_tagger_ner_round_trip(trained_tagger_ner, tmp_path):
    nlp, _ = trained_tagger_ner
    texts = [t for t, _ in NER_DATA] + [long_ner_example()[0], ""]
    predicted = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("trf_tagger_ner").labels == ("LOC",)
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)] == predicted
    ner_bytes = nlp.get_pipe("trf_tagger_ner").to_bytes()
    again = spacy.load(tmp_path / "p")
    again.get_pipe("trf_tagger_ner").from_bytes(ner_bytes)
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in again.pipe(texts)] == predicted


def test_trf_tagger_ner_loss_is_hf_token_cross_entropy(bert_checkpoint):
    """Loss and gradient equal torch's cross_entropy (HF's token-classification loss): the mean
    over the labelled tokens; unannotated tokens ('-') contribute nothing."""
    nlp = nlp_with(bert_checkpoint, "trf_tagger_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("trf_tagger_ner")
    partial = Example.from_dict(nlp.make_doc("rome is old"), {"entities": ["U-LOC", "-", "O"]})
    batch = [examples[0], partial]
    rng = numpy.random.default_rng(0)
    scores = [rng.normal(size=(len(eg.predicted), len(ner.tags))).astype("f") for eg in batch]
    probs = [numpy.exp(log_softmax(s)) for s in scores]  # the model's training output is softmaxed
    loss, d_scores = ner.get_loss(batch, probs)
    logits = torch.tensor(numpy.concatenate(scores), requires_grad=True)
    gold = [ner.tags.index(t) if t not in (None, "-") else -100 for eg in batch for t in eg.get_aligned_ner()]
    reference = torch.nn.functional.cross_entropy(logits, torch.tensor(gold))  # mean, ignore_index -100
    reference.backward()
    assert numpy.concatenate(d_scores) == pytest.approx(logits.grad.numpy(), abs=1e-6)
    assert loss == pytest.approx(float(reference.detach()), rel=1e-5)
    assert float(abs(d_scores[1][1]).sum()) == 0.0  # the '-' token


def test_trf_tagger_ner_keeps_preset_entities(trained_tagger_ner):
    """An entity_ruler's entities win where they overlap; the tagger adds the rest."""
    nlp, _ = trained_tagger_ner
    doc = nlp.make_doc("paris is a city in france")
    doc.set_ents([spacy.tokens.Span(doc, 0, 1, "CITY")])
    for _, proc in nlp.pipeline:
        doc = proc(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [("paris", "CITY"), ("france", "LOC")]


def test_trf_tagger_ner_errors(bert_checkpoint):
    blank = spacy.blank("en")
    blank.add_pipe("trf_tagger_ner")
    with pytest.raises(SpacyMlmError, match="needs a 'transformer' component"):
        blank.initialize(lambda: ner_examples(blank))
    nlp = nlp_with(bert_checkpoint, "trf_tagger_ner")
    no_ents = [Example.from_dict(nlp.make_doc("a quiet street"), {"entities": []})]
    with pytest.raises(SpacyMlmError, match="no entity labels"):
        nlp.initialize(lambda: no_ents)
    nlp = nlp_with(bert_checkpoint, "trf_tagger_ner")
    optimizer = nlp.initialize(lambda: ner_examples(nlp))
    with pytest.raises(SpacyMlmError, match="cannot add label 'ORG' to an initialized model"):
        nlp.get_pipe("trf_tagger_ner").add_label("ORG")
    org = [Example.from_dict(nlp.make_doc("apple sells phones"), {"entities": [(0, 5, "ORG")]})]
    with pytest.raises(SpacyMlmError, match="entity label 'ORG'"):
        nlp.update(org, sgd=optimizer)
    with pytest.warns(UserWarning, match=r"labels absent from the training data: \['ORG'\]"):
        nlp.evaluate(org)
    tagger = nlp.get_pipe("trf_tagger_ner")

    def weights():
        return [node.get_param(n).copy() for node in tagger.model.walk() for n in node.param_names if node.has_param(n)]

    before = weights()
    assert before
    assert nlp.update([], sgd=optimizer) == {}  # spaCy's Language.update returns at once on no examples
    assert tagger.update([], sgd=optimizer) == {"trf_tagger_ner": 0.0}
    assert all(numpy.array_equal(a, b) for a, b in zip(before, weights()))
    assert nlp.update([Example.from_dict(nlp.make_doc(""), {})], sgd=optimizer)["trf_tagger_ner"] == 0.0


def test_trf_tagger_ner_no_entity_edges_on_whitespace(trained_tagger_ner):
    """Like spaCy's ner: whitespace tokens neither start nor end an entity, even where the
    model's scores say so (a whitespace-only token has no wordpiece, so it gets the bias)."""
    nlp, _ = trained_tagger_ner
    ner = nlp.get_pipe("trf_tagger_ner")
    doc = nlp.make_doc("paris \n france")
    assert [t.is_space for t in doc] == [False, True, False]
    u_loc = numpy.full((3, len(ner.tags)), -5.0, dtype="f")
    u_loc[:, ner.tags.index("U-LOC")] = 5.0
    assert [ner.tags[i] for i in ner.decode(doc, u_loc)] == ["U-LOC", "O", "U-LOC"]
    inside = numpy.full((3, len(ner.tags)), -5.0, dtype="f")  # B I L: whitespace inside is allowed
    for t, tag in enumerate(["B-LOC", "I-LOC", "L-LOC"]):
        inside[t, ner.tags.index(tag)] = 5.0
    assert [ner.tags[i] for i in ner.decode(doc, inside)] == ["B-LOC", "I-LOC", "L-LOC"]
    for ent in nlp("paris \n france . rome \n is old").ents:
        assert not ent[0].is_space and not ent[-1].is_space


def test_token_classifier_starts_like_hf_classifier(bert_checkpoint):
    """spacy_mlm.TokenClassifier.v1: weights N(0, 0.02) and zero bias (HF's classifier init),
    one row per BILUO tag; init_std is a config setting."""
    nlp = nlp_with(bert_checkpoint, "trf_tagger_ner")
    nlp.initialize(lambda: ner_examples(nlp))
    output = nlp.get_pipe("trf_tagger_ner").model.get_ref("output_layer")
    W, b = output.get_param("W"), output.get_param("b")
    assert W.shape == (5, nlp.get_pipe("transformer").model.transformer.config.hidden_size)
    assert float(W.std()) == pytest.approx(0.02, rel=0.25) and float(abs(b).max()) == 0.0
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(bert_checkpoint)}})
    nlp.add_pipe("trf_tagger_ner", config={"model": {"init_std": 0.5}})
    nlp.initialize(lambda: ner_examples(nlp))
    assert float(nlp.get_pipe("trf_tagger_ner").model.get_ref("output_layer").get_param("W").std()) == pytest.approx(0.5, rel=0.25)
