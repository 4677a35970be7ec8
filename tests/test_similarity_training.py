"""trf_similarity training: losses against sentence-transformers' formulas, gradients into the
shared transformer, learning on a few pairs, the pair reader, the scorer, the config, saving."""

import json
import math
import re
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from thinc.api import Adam

import spacy_mlm.pipes.similarity  # noqa: F401  (registers pair_spans.v1 etc. without the entry points)
from spacy_mlm.convert import convert
from spacy_mlm.errors import SpacyMlmError
from spacy_mlm.pipes._similarity_losses import CoSENTLoss, MNRLoss
from spacy_mlm.pipes.similarity import pearson, spearman
from spacy_mlm.readers.pairs import PAIR_KEY, SCORE_KEY, create_pair_corpus, make_pair_doc, pair_example

PAIR_SPANS = {"get_spans": {"@span_getters": "spacy_mlm.pair_spans.v1", "window": 128, "stride": 96}}
PAIRS = [
    ("the capital of france is paris", "paris is the capital of france", 5.0),
    ("a quiet street near the old museum", "the old museum is near a quiet street", 4.2),
    ("london bridge over the river", "a bridge in london", 3.1),
    ("a busy market in rome", "the famous park in berlin", 1.4),
    ("the train station north of the city", "a small beautiful park", 0.3),
    ("many people in madrid", "madrid has many people", 4.6),
    ("the new museum in london", "an old market in rome", 0.8),
    ("the river in berlin", "berlin has a river", 3.9),
]


def pair_nlp(checkpoint, loss=None, loss_weight=1.0, spans=PAIR_SPANS):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint), **spans}})
    config = {"loss_weight": loss_weight}
    if loss:
        config["loss"] = {"@misc": loss}
    nlp.add_pipe("trf_similarity", config=config)
    return nlp


def examples(nlp, pairs=PAIRS, scored=True):
    return [pair_example(make_pair_doc(nlp.make_doc(a), nlp.make_doc(b), s if scored else None)) for a, b, s in pairs]


# -- losses: sentence-transformers' definitions, written out with loops ------------------------
def cosent_by_hand(a, b, scores, scale=20.0):
    cos = [float(torch.nn.functional.cosine_similarity(a[i], b[i], dim=0)) for i in range(len(a))]
    terms = [math.exp(scale * (cos[i] - cos[j])) for i in range(len(a)) for j in range(len(a)) if scores[i] < scores[j]]
    return math.log(1.0 + sum(terms))


def mnrl_by_hand(a, b, scale=20.0):
    total = 0.0
    for i in range(len(a)):
        logits = [scale * float(torch.nn.functional.cosine_similarity(a[i], b[j], dim=0)) for j in range(len(b))]
        total += -logits[i] + math.log(sum(math.exp(x) for x in logits))
    return total / len(a)


def test_loss_values_match_the_formulas():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    scores = torch.tensor([0.0, 2.5, 2.5, 5.0, 1.0, 3.3])
    assert float(CoSENTLoss()(a, b, scores)) == pytest.approx(cosent_by_hand(a, b, scores.tolist()), rel=1e-5)
    assert float(CoSENTLoss(scale=5.0)(a, b, scores)) == pytest.approx(cosent_by_hand(a, b, scores.tolist(), 5.0), rel=1e-5)
    assert float(MNRLoss()(a, b, None)) == pytest.approx(mnrl_by_hand(a, b), rel=1e-5)
    # One pair (or equal scores): nothing to order, loss 0 with finite gradients.
    a1 = a[:1].clone().requires_grad_()
    loss = CoSENTLoss()(a1, b[:1], scores[:1])
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(a1.grad).all()


# -- gradients into the shared transformer ---------------------------------------------------------
def encoder_grads(nlp, egs):
    """The transformer's parameter gradients after one update without an optimizer (dropout seeded)."""
    transformer = nlp.get_pipe("transformer")
    params = list(transformer.model.transformer.parameters())
    for p in params:
        p.grad = None
    torch.manual_seed(0)
    losses = {}
    transformer.update(egs, sgd=None, losses=losses)
    nlp.get_pipe("trf_similarity").update(egs, sgd=None, losses=losses)
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    return grads, losses


@pytest.mark.parametrize("loss", ["spacy_mlm.CoSENTLoss.v1", "spacy_mlm.MNRLoss.v1"])
def test_gradients_reach_the_transformer_and_scale_with_loss_weight(loss, bert_checkpoint):
    scored = loss == "spacy_mlm.CoSENTLoss.v1"
    results = {}
    for weight in (1.0, 2.5, 0.0):
        nlp = pair_nlp(bert_checkpoint, loss=loss, loss_weight=weight)
        egs = examples(nlp, scored=scored)
        nlp.initialize(lambda egs=egs: egs)
        results[weight] = encoder_grads(nlp, egs)
    grads, losses = results[1.0]
    assert losses["trf_similarity"] > 0
    assert sum(float(g.abs().sum()) for g in grads) > 0
    g1, g25, g0 = (torch.cat([g.flatten() for g in results[w][0]]) for w in (1.0, 2.5, 0.0))
    # float32 backward: entries that are zero up to rounding are compared at the largest one's scale
    torch.testing.assert_close(g25, 2.5 * g1, rtol=1e-4, atol=1e-5 * float(g1.abs().max()))
    assert not g0.any()
    assert results[2.5][1]["trf_similarity"] == pytest.approx(losses["trf_similarity"], rel=1e-5)  # reported unweighted


def test_cosent_loss_and_gradient_equal_the_plain_hf_reference(no_dropout_checkpoint):
    """One CoSENT step through transformer + listener + trf_similarity = the same step in plain
    torch (HF AutoModel, attention-mask mean pooling, sentence-transformers' CoSENTLoss code):
    same loss, same gradient on every encoder weight (dropout off so both draw nothing)."""
    from transformers import AutoModel, AutoTokenizer

    nlp = pair_nlp(no_dropout_checkpoint)
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    grads, losses = encoder_grads(nlp, egs)
    names = [n for n, _ in nlp.get_pipe("transformer").model.transformer.named_parameters()]

    tok, ref = AutoTokenizer.from_pretrained(no_dropout_checkpoint), AutoModel.from_pretrained(no_dropout_checkpoint)
    ref.train()

    def mean_pool(texts):
        enc = tok(texts, padding=True, return_tensors="pt")
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return (ref(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)

    a, b = mean_pool([p[0] for p in PAIRS]), mean_pool([p[1] for p in PAIRS])
    # sentence-transformers' CoSENTLoss.forward, as written there
    scores = torch.nn.functional.cosine_similarity(a, b, dim=-1) * 20.0
    scores = scores[:, None] - scores[None, :]
    labels = torch.tensor([p[2] for p in PAIRS])
    labels = (labels[:, None] < labels[None, :]).float()
    scores = scores - (1 - labels) * 1e12
    loss = torch.logsumexp(torch.cat((torch.zeros(1), scores.view(-1)), dim=0), dim=0)
    loss.backward()
    assert losses["trf_similarity"] == pytest.approx(float(loss.detach()), rel=1e-5)
    ref_grads = dict(ref.named_parameters())
    scale = max(float(p.grad.abs().max()) for p in ref_grads.values() if p.grad is not None)
    for name, grad in zip(names, grads):
        expected = ref_grads[name].grad
        if expected is None:  # the pooler: no part of the loss
            assert not grad.any(), name
        else:
            torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_training_on_a_few_pairs_raises_spearman(bert_checkpoint):
    spacy.util.fix_random_seed(0)  # dropout draws
    nlp = pair_nlp(bert_checkpoint)
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    before = nlp.evaluate(egs)
    optimizer = Adam(1e-3)
    for _ in range(40):
        nlp.update(egs, sgd=optimizer)
    after = nlp.evaluate(egs)
    assert after["similarity_spearman"] > max(before["similarity_spearman"] + 0.5, 0.8), (before, after)


def test_positive_pairs_with_mnrl_learn_to_rank_their_partner(bert_checkpoint):
    spacy.util.fix_random_seed(0)
    nlp = pair_nlp(bert_checkpoint, loss="spacy_mlm.MNRLoss.v1")
    egs = examples(nlp, scored=False)
    nlp.initialize(lambda: egs)

    def partner_found() -> float:
        """Share of first sentences whose most similar second sentence is their own."""
        firsts, seconds = (list(nlp.pipe([pair[side] for pair in PAIRS])) for side in (0, 1))
        return numpy.mean([max(range(len(seconds)), key=lambda j: a.similarity(seconds[j])) == i for i, a in enumerate(firsts)])

    before = partner_found()
    optimizer = Adam(1e-3)
    losses = [nlp.update(egs, sgd=optimizer, losses={})["trf_similarity"] for _ in range(40)]
    assert losses[-1] < losses[0] * 0.5
    assert partner_found() >= max(before + 0.25, 0.75), before


def test_pair_vectors_are_the_single_sentence_vectors(bert_checkpoint):
    """Each sentence of a pair is encoded alone: its pooled vector is the doc vector of the sentence
    by itself, so what training optimises is what doc.similarity reports."""
    nlp = pair_nlp(bert_checkpoint)
    nlp.initialize()
    for eg in examples(nlp)[:3]:
        doc = nlp(eg.predicted)
        a, b = (nlp(span.text) for span in doc.spans[PAIR_KEY])
        assert doc._.trf_pair_similarity == pytest.approx(a.similarity(b), abs=1e-5)


def test_empty_batches_and_docs_without_pairs(bert_checkpoint):
    nlp = pair_nlp(bert_checkpoint)
    nlp.initialize()
    sim = nlp.get_pipe("trf_similarity")
    assert sim.update([]) == {"trf_similarity": 0.0}
    assert nlp.update([]) == {}
    plain = [spacy.training.Example(nlp.make_doc(t), nlp.make_doc(t)) for t in ("paris is a city", "", "berlin")]
    grads, losses = encoder_grads(nlp, plain)
    assert losses["trf_similarity"] == 0.0 and not any(g.any() for g in grads)
    mixed = plain + examples(nlp)[:2]
    grads, losses = encoder_grads(nlp, mixed)
    assert losses["trf_similarity"] > 0 and any(g.any() for g in grads)


def test_save_and_load_keep_the_trained_similarity(bert_checkpoint, tmp_path):
    nlp = pair_nlp(bert_checkpoint)
    egs = examples(nlp)
    nlp.initialize(lambda: egs)
    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(egs, sgd=optimizer)
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.get_pipe("trf_similarity").loss_weight == 1.0
    for text_a, text_b, _ in PAIRS[:3]:
        assert loaded(text_a).similarity(loaded(text_b)) == pytest.approx(nlp(text_a).similarity(nlp(text_b)), abs=1e-5)
    assert loaded.evaluate(egs)["similarity_spearman"] == pytest.approx(nlp.evaluate(egs)["similarity_spearman"])


# -- errors that name the fix ----------------------------------------------------------------------
def test_error_transformer_without_pair_spans(bert_checkpoint):
    nlp = pair_nlp(bert_checkpoint, spans={})
    egs = examples(nlp)
    with pytest.raises(SpacyMlmError, match="spacy_mlm.pair_spans.v1"):
        nlp.initialize(lambda: egs)


def test_error_loss_and_data_disagree(bert_checkpoint):
    nlp = pair_nlp(bert_checkpoint)
    nlp.initialize()
    with pytest.raises(SpacyMlmError, match="has no score.*MNRLoss"):
        nlp.update(examples(nlp, scored=False))
    nlp = pair_nlp(bert_checkpoint, loss="spacy_mlm.MNRLoss.v1")
    nlp.initialize()
    with pytest.raises(SpacyMlmError, match="have scores.*CoSENTLoss"):
        nlp.update(examples(nlp))


def test_error_pairs_read_without_the_pair_reader(bert_checkpoint):
    nlp = pair_nlp(bert_checkpoint)
    nlp.initialize()
    reference = make_pair_doc(nlp.make_doc("a city"), nlp.make_doc("a town"), 3.0)
    with pytest.raises(SpacyMlmError, match="spacy_mlm.PairCorpus.v1"):
        nlp.update([spacy.training.Example(nlp.make_doc(reference.text), reference)])


# -- data: the pair reader and the scorer ----------------------------------------------------------
STS_ROWS = "\n".join(f"main-news\tfile\t2012\t{i}\t{s}\t{a}\t{b}" for i, (a, b, s) in enumerate(PAIRS))


def test_pair_corpus_reads_convert_output_and_jsonl(tmp_path):
    nlp = spacy.blank("en")
    (tmp_path / "sts.csv").write_text(STS_ROWS + "\n", encoding="utf8")
    convert(tmp_path / "sts.csv", tmp_path / "sts.spacy", "sts")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"sentence1": a, "sentence2": b}) + "\n" for a, b, _ in PAIRS), encoding="utf8")
    from_sts = list(create_pair_corpus(tmp_path / "sts.spacy")(nlp))
    from_jsonl = list(create_pair_corpus(jsonl, limit=3)(nlp))
    assert len(from_sts) == len(PAIRS) and len(from_jsonl) == 3
    for eg, (a, b, score) in zip(from_sts, PAIRS):
        assert [s.text for s in eg.reference.spans[PAIR_KEY]] == [a, b] == [s.text for s in eg.predicted.spans[PAIR_KEY]]
        assert eg.reference.user_data[SCORE_KEY] == score and SCORE_KEY not in eg.predicted.user_data
        assert eg.reference.text == f"{a} {b}"
    assert all(eg.reference.user_data[SCORE_KEY] is None for eg in from_jsonl)
    # The pair docs survive DocBin: a pair corpus can be saved as it is.
    from spacy.tokens import DocBin

    back = list(DocBin(docs=[eg.reference for eg in from_sts], store_user_data=True).get_docs(nlp.vocab))
    assert [d.user_data[SCORE_KEY] for d in back] == [s for *_, s in PAIRS]
    assert [[s.text for s in d.spans[PAIR_KEY]] for d in back] == [[a, b] for a, b, _ in PAIRS]


def test_multitask_corpus_reads_annotated_docs_and_pairs(tmp_path):
    from spacy.tokens import DocBin

    from spacy_mlm.readers.pairs import create_multitask_corpus, is_pair_doc

    nlp = spacy.blank("en")
    (tmp_path / "docs").mkdir()
    docs = [nlp.make_doc(t) for t in ("paris is big", "rome is old", "a third doc")]
    for doc in docs:
        doc.ents = [doc.char_span(0, len(doc[0].text), label="LOC")]
    DocBin(docs=docs).to_disk(tmp_path / "docs" / "ner.spacy")
    (tmp_path / "sts.csv").write_text(STS_ROWS + "\n", encoding="utf8")
    convert(tmp_path / "sts.csv", tmp_path / "sts.spacy", "sts")
    only_docs = list(create_multitask_corpus(tmp_path / "docs")(nlp))
    both = list(create_multitask_corpus(tmp_path / "docs", pairs=tmp_path / "sts.spacy")(nlp))
    limited = list(create_multitask_corpus(tmp_path / "docs", pairs=tmp_path / "sts.spacy", limit=2, pairs_limit=3)(nlp))
    assert [eg.reference.text for eg in only_docs] == [d.text for d in docs]
    assert [eg.reference.text for eg in both] == [d.text for d in docs] + [f"{a} {b}" for a, b, _ in PAIRS]
    assert [is_pair_doc(eg.reference) for eg in limited] == [False] * 2 + [True] * 3
    assert [e.label_ for eg in both[:3] for e in eg.reference.ents] == ["LOC"] * 3
    assert all(is_pair_doc(eg.predicted) and eg.reference.user_data[SCORE_KEY] == s for eg, (*_, s) in zip(both[3:], PAIRS))


def test_pair_corpus_errors(tmp_path):
    nlp = spacy.blank("en")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence1": "a"}\n', encoding="utf8")
    with pytest.raises(SpacyMlmError, match=re.escape(f"{bad}:1: expected")):
        list(create_pair_corpus(bad)(nlp))
    with pytest.raises(SpacyMlmError, match="unknown pair file type"):
        (tmp_path / "x.csv").write_text("x", encoding="utf8")
        list(create_pair_corpus(tmp_path / "x.csv")(nlp))
    from spacy.tokens import DocBin

    DocBin(docs=[nlp("not a pair"), nlp("either")]).to_disk(tmp_path / "ner.spacy")
    with pytest.raises(SpacyMlmError, match="--kind sts"):
        list(create_pair_corpus(tmp_path / "ner.spacy")(nlp))
    assert list(create_pair_corpus(None)(nlp)) == []


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = numpy.random.default_rng(0)
    x, y = rng.normal(size=50), rng.integers(0, 5, size=50).astype(float)  # ties in y
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).correlation, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert spearman([1.0], [2.0]) is None and pearson([1.0, 1.0], [0.0, 1.0]) is None


def test_scorer_pairs_sentence_docs_by_pair_id_in_any_order():
    """Pairs read as two docs (spaCy's own reader on a convert --kind sts file): scored by the
    cosine of their doc vectors, side b before a allowed, next to pair docs; a lone half warns,
    a side given twice is an error."""
    from spacy.training import Example

    from spacy_mlm.pipes.similarity import install_extensions, score_similarity

    install_extensions()
    nlp = spacy.blank("en")
    rng = numpy.random.default_rng(0)

    def side(pair_id, which, score, vector):
        ref = nlp.make_doc(f"pair {pair_id} side {which}")
        ref.user_data.update({"pair_id": pair_id, "side": which, "score": score})
        pred = nlp.make_doc(ref.text)
        pred._.trf_vector = vector
        return Example(pred, ref)

    vectors = rng.normal(size=(4, 2, 8)).astype("f")
    scores = [4.0, 1.0, 2.5, 0.5]
    cosines = [float(a @ b / numpy.linalg.norm(a) / numpy.linalg.norm(b)) for a, b in vectors]
    examples = [side(0, "a", scores[0], vectors[0, 0]), side(1, "b", scores[1], vectors[1, 1]),
                side(0, "b", scores[0], vectors[0, 1]), side(1, "a", scores[1], vectors[1, 0]),
                side(2, "a", scores[2], vectors[2, 0]), side(2, "b", scores[2], vectors[2, 1])]
    pair_doc = make_pair_doc(nlp.make_doc("one"), nlp.make_doc("two"), scores[3])
    predicted_pair = make_pair_doc(nlp.make_doc("one"), nlp.make_doc("two"), None)
    predicted_pair._.trf_pair_similarity = cosines[3]
    examples.append(Example(predicted_pair, pair_doc))
    result = score_similarity(examples)
    assert result["similarity_spearman"] == pytest.approx(spearman(cosines, scores), abs=1e-6)
    assert result["similarity_pearson"] == pytest.approx(pearson(cosines, scores), abs=1e-6)
    with pytest.warns(UserWarning, match=r"1 pair\(s\) had only one of their two docs \(e.g. pair_id 7\)"):
        score_similarity(examples + [side(7, "a", 1.0, vectors[0, 0])])
    with pytest.raises(SpacyMlmError, match="two docs are side 'a' of pair_id 0"):
        score_similarity(examples + [side(0, "a", 1.0, vectors[0, 0]), side(0, "a", 1.0, vectors[0, 0])])


# -- the shipped config, as `spacy train` runs it ----------------------------------------------------
def test_similarity_config_trains_and_loads(bert_checkpoint, tmp_path):
    from spacy.cli.train import train

    (tmp_path / "sts.csv").write_text(STS_ROWS + "\n", encoding="utf8")
    convert(tmp_path / "sts.csv", tmp_path / "train.spacy", "sts")
    config = Path(__file__).resolve().parent.parent / "configs" / "similarity.cfg"
    overrides = {"paths.train": str(tmp_path / "train.spacy"), "paths.dev": str(tmp_path / "train.spacy"),
                 "paths.base_model": str(bert_checkpoint), "training.eval_frequency": 1}
    train(config, tmp_path / "out", overrides=overrides)  # what `python -m spacy train` calls
    meta = json.loads((tmp_path / "out" / "model-best" / "meta.json").read_text())
    assert "similarity_spearman" in meta["performance"] and meta["performance"]["similarity_spearman"] is not None
    trained = spacy.load(tmp_path / "out" / "model-best")
    assert -1.0 <= trained(PAIRS[0][0]).similarity(trained(PAIRS[0][1])) <= 1.0 + 1e-6
    # spacy evaluate reads the convert output with spaCy's own corpus reader (two docs per pair) and
    # reports what spacy train scored on the pair docs for model-best. Its --output JSON has every
    # score because spaCy 3.8's handle_scores_per_type returns them all: this test notices a change.
    from spacy.cli.evaluate import evaluate

    scores = evaluate(str(tmp_path / "out" / "model-best"), tmp_path / "train.spacy", output=tmp_path / "scores.json")
    written = json.loads((tmp_path / "scores.json").read_text())
    for key in ("similarity_spearman", "similarity_pearson"):
        assert scores[key] == pytest.approx(meta["performance"][key], abs=1e-6)
        assert written[key] == pytest.approx(scores[key], abs=1e-9)  # the JSON keeps 10 digits
