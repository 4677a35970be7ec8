"""Every head's share of the shared encoder's gradient is a config value: fill_mask and
trf_similarity `loss_weight`, the listener heads' (trf_tagger_ner, trf_ner, trf_textcat)
`model.tok2vec.grad_factor`. The encoder's gradient scales with it exactly."""

from pathlib import Path
from typing import Any

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.training import Example

from spacy_mlm.errors import SpacyMlmError

from .test_ner_textcat import CAT_DATA, NER_DATA, ner_examples


def encoder_grad(nlp) -> torch.Tensor:
    params = list(nlp.get_pipe("transformer").model.transformer.parameters())
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    for p in params:
        p.grad = None
    return grad


@pytest.mark.parametrize("weight", [0.0, 0.25, 3.0])
def test_fill_mask_loss_weight_scales_the_encoder_gradient(weight, no_dropout_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(no_dropout_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"mlm_rate": 0.3})
    nlp.initialize()
    fill_mask = nlp.get_pipe("fill_mask")
    examples = [Example(d, d) for d in (nlp.make_doc(t) for t, _ in NER_DATA)]
    state = fill_mask._generator.get_state()  # the same masks for both updates
    unweighted = fill_mask.update(examples, losses={})
    g1 = encoder_grad(nlp)
    fill_mask._generator.set_state(state)
    fill_mask.loss_weight = weight
    weighted = fill_mask.update(examples, losses={})
    g = encoder_grad(nlp)
    assert g1.abs().sum() > 0
    torch.testing.assert_close(g, weight * g1, rtol=1e-4, atol=1e-5 * float(g1.abs().max()))
    assert weighted["fill_mask"] == (0.0 if weight == 0 else pytest.approx(unweighted["fill_mask"], rel=1e-6))


@pytest.mark.parametrize("factor", [0.0, 0.5, 2.0])
def test_listener_grad_factor_scales_the_encoder_gradient(factor, no_dropout_checkpoint):
    """trf_tagger_ner (like trf_ner and trf_textcat) weighs its loss into the encoder with its
    listener's grad_factor: [components.NAME.model.tok2vec] grad_factor = 0.5."""
    grads = {}
    for f in (1.0, factor):
        spacy.util.fix_random_seed(0)
        nlp = spacy.blank("en")
        nlp.add_pipe("transformer", config={"model": {"name": str(no_dropout_checkpoint)}})
        nlp.add_pipe("trf_tagger_ner", config={"model": {"tok2vec": {"grad_factor": f}}})
        examples = ner_examples(nlp)
        nlp.initialize(lambda examples=examples: examples)
        # No optimizer: the gradients stay on the parameters.
        nlp.get_pipe("transformer").update(examples, sgd=None)
        nlp.get_pipe("trf_tagger_ner").update(examples, sgd=None)
        grads[f] = encoder_grad(nlp)
    assert grads[1.0].abs().sum() > 0
    torch.testing.assert_close(grads[factor], factor * grads[1.0], rtol=1e-4, atol=1e-5 * float(grads[1.0].abs().max()))


def test_negative_weights_are_rejected(no_dropout_checkpoint):
    nlp = spacy.blank("en")
    with pytest.raises(SpacyMlmError, match=r"fill_mask loss_weight must be >= 0.*\[components.fill_mask\] loss_weight"):
        nlp.add_pipe("fill_mask", config={"loss_weight": -1.0})
    with pytest.raises(SpacyMlmError, match="trf_similarity loss_weight must be >= 0"):
        nlp.add_pipe("trf_similarity", config={"loss_weight": -0.5})


def share_pipeline(checkpoint, share: float):
    spacy.util.fix_random_seed(0)  # initialize seeds fill_mask's masking draws from it
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("fill_mask", config={"mlm_rate": 0.3, "mlm_share": share})
    nlp.initialize()
    return nlp


def test_fill_mask_mlm_share_masks_a_seeded_share_of_the_windows(no_dropout_checkpoint):
    """mlm_share 0.5: half the windows each step, a fresh uniform draw each step, the same draws for
    the same seed; the loss is the mean over the drawn windows' masked tokens (the full batch's
    scale, not share times it) and its gradient reaches the encoder."""
    texts = [t for t, _ in NER_DATA + CAT_DATA]  # 8 docs, one window each
    nlp, twin = share_pipeline(no_dropout_checkpoint, 0.5), share_pipeline(no_dropout_checkpoint, 0.5)
    fill_mask = nlp.get_pipe("fill_mask")
    docs = [nlp.make_doc(t) for t in texts]
    window_ids = [fill_mask.tokenizer(t)["input_ids"] for t in texts]
    drawn = []
    for _ in range(6):
        batch, twin_batch = fill_mask.masked_batch(docs), twin.get_pipe("fill_mask").masked_batch(docs)
        assert batch["input_ids"].shape[0] == 4
        for key in batch:
            assert torch.equal(batch[key], twin_batch[key])
        unmasked = [torch.where(labels >= 0, labels, ids)[mask.bool()].tolist()
                    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"])]
        drawn.append(frozenset(window_ids.index(row) for row in unmasked))
    assert len(set(drawn)) > 1 and set().union(*drawn) == set(range(8))

    examples = [Example(d, d) for d in (nlp.make_doc(t) for t in texts)]
    state = fill_mask._generator.get_state()
    batch = fill_mask.masked_batch([eg.predicted for eg in examples])
    predicted = batch["labels"] != -100
    with torch.no_grad():
        hidden = fill_mask.upstream_model.transformer(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        expected = torch.nn.functional.cross_entropy(fill_mask.tied_head()(hidden[predicted]), batch["labels"][predicted])
    fill_mask._generator.set_state(state)
    loss = fill_mask.update(examples, losses={})["fill_mask"]
    assert loss == pytest.approx(float(expected), rel=1e-5)
    assert encoder_grad(nlp).abs().sum() > 0


def test_fill_mask_mlm_share_one_keeps_every_window(no_dropout_checkpoint):
    nlp = share_pipeline(no_dropout_checkpoint, 1.0)
    docs = [nlp.make_doc(t) for t, _ in NER_DATA]
    assert nlp.get_pipe("fill_mask").masked_batch(docs)["input_ids"].shape[0] == len(docs)
    with pytest.raises(SpacyMlmError, match=r"mlm_share must be in \(0, 1\], got 0.0.*\[components.fill_mask\] mlm_share"):
        spacy.blank("en").add_pipe("fill_mask", config={"mlm_share": 0.0})


def test_fill_mask_replay_adds_general_text_to_the_mlm_batch(no_dropout_checkpoint, tmp_path, monkeypatch):
    """replay_docs docs of replay_text join each step's MLM batch, the text cycling; the listener
    heads never see them; a saved pipeline loads without the file, and training then names it."""
    general = tmp_path / "general.txt"
    general.write_text("the river runs north\nan old town hall\n\nwinter comes early\n", encoding="utf8")
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(no_dropout_checkpoint)}})
    nlp.add_pipe("fill_mask", config={"mlm_rate": 0.3, "replay_text": str(general), "replay_docs": 2})
    nlp.initialize()
    fill_mask = nlp.get_pipe("fill_mask")
    seen = []
    masked_batch = fill_mask.masked_batch
    monkeypatch.setattr(fill_mask, "masked_batch", lambda docs: seen.append([d.text for d in docs]) or masked_batch(docs))
    examples = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t, _ in NER_DATA[:2]]
    for _ in range(3):
        assert fill_mask.update(examples, losses={})["fill_mask"] > 0
    tasks = [eg.predicted.text for eg in examples]
    assert seen == [tasks + ["the river runs north", "an old town hall"], tasks + ["winter comes early", "the river runs north"],
                    tasks + ["an old town hall", "winter comes early"]]

    general.unlink()
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("fill_mask").replay_docs == 2
    with pytest.raises(SpacyMlmError, match=r"\[components.fill_mask\] replay_text = .*general.txt.*not found"):
        loaded.get_pipe("fill_mask").update(examples, losses={})
    with pytest.raises(SpacyMlmError, match=r"replay_docs = 3 needs .*replay_text"):
        spacy.blank("en").add_pipe("fill_mask", config={"replay_docs": 3})


def every_pipeline(checkpoint: Path, every: int, **config: Any) -> Language:
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("fill_mask", config={"mlm_rate": 0.3, "mlm_every": every, **config})
    nlp.initialize()
    return nlp


def test_fill_mask_mlm_every_sums_k_steps_in_one_pass(no_dropout_checkpoint):
    """mlm_every 2: the first update adds no gradient and no loss; the second runs one pass over
    both batches' docs whose gradient is twice that of an every-update pass over the same docs with
    the same masks (2x the mean over both batches' masked tokens), and reports that pass's loss;
    initialize drops docs still waiting for a pass."""
    nlp, reference = every_pipeline(no_dropout_checkpoint, 2), every_pipeline(no_dropout_checkpoint, 1)
    first = [Example(d, d) for d in (nlp.make_doc(t) for t, _ in NER_DATA)]
    second = [Example(d, d) for d in (nlp.make_doc(t) for t, _ in CAT_DATA)]
    fill_mask = nlp.get_pipe("fill_mask")
    state = fill_mask._generator.get_state()
    assert fill_mask.update(first, losses={}) == {"fill_mask": 0.0}
    assert encoder_grad(nlp).abs().sum() == 0
    loss = fill_mask.update(second, losses={})["fill_mask"]
    g2 = encoder_grad(nlp)
    ref_fill_mask = reference.get_pipe("fill_mask")
    ref_fill_mask._generator.set_state(state)
    ref_loss = ref_fill_mask.update(first + second, losses={})["fill_mask"]
    g1 = encoder_grad(reference)
    assert g1.abs().sum() > 0 and loss == pytest.approx(ref_loss, rel=1e-5)
    torch.testing.assert_close(g2, 2 * g1, rtol=1e-4, atol=1e-5 * float(g1.abs().max()))
    # The cycle starts again: the third update waits, the fourth runs.
    assert fill_mask.update(first, losses={})["fill_mask"] == 0.0
    assert fill_mask.update(second, losses={})["fill_mask"] > 0
    fill_mask.update(first, losses={})
    nlp.initialize()
    assert fill_mask._pending == [] and fill_mask.update(second, losses={})["fill_mask"] == 0.0


def test_fill_mask_mlm_every_takes_k_times_the_replay_docs(no_dropout_checkpoint, tmp_path, monkeypatch):
    general = tmp_path / "general.txt"
    general.write_text("the river runs north\nan old town hall\nwinter comes early\n", encoding="utf8")
    nlp = every_pipeline(no_dropout_checkpoint, 3, replay_text=str(general), replay_docs=1)
    fill_mask = nlp.get_pipe("fill_mask")
    seen = []
    masked_batch = fill_mask.masked_batch
    monkeypatch.setattr(fill_mask, "masked_batch", lambda docs: seen.append([d.text for d in docs]) or masked_batch(docs))
    batches = [[Example(nlp.make_doc(t), nlp.make_doc(t))] for t, _ in NER_DATA[:3]]
    for batch in batches:
        fill_mask.update(batch, losses={})
    assert seen == [[t for t, _ in NER_DATA[:3]] + ["the river runs north", "an old town hall", "winter comes early"]]


@pytest.mark.parametrize("every", [0, -2, 1.5, True])
def test_fill_mask_mlm_every_must_be_a_whole_number_from_one(every):
    from spacy_mlm.pipes.fill_mask import FillMask

    pattern = r"mlm_every must be a whole number >= 1.*\[components.fill_mask\] mlm_every"
    with pytest.raises(SpacyMlmError, match=pattern):
        FillMask(spacy.blank("en"), mlm_every=every)
    with pytest.raises(SpacyMlmError, match=pattern):  # set later, as a script or bench would
        FillMask(spacy.blank("en")).mlm_every = every


def test_length_groups_split_only_where_padding_costs_more_than_a_call():
    from spacy_mlm.pipes._mlm_batch import length_groups

    assert length_groups([]) == []
    assert length_groups([30, 41, 35]) == [[0, 1, 2]]  # alike: one call, the batch as it is
    mixed = [150, 30, 32, 149, 28, 31, 150, 29, 33, 30]  # 3 replay windows among 7 tweets
    assert length_groups(mixed) == [[1, 2, 4, 5, 7, 8, 9], [0, 3, 6]]
    assert length_groups(mixed, call_cost=10_000) == [list(range(10))]
    assert length_groups([100, 10, 200, 20], call_cost=0) == [[1], [3], [0], [2]]


def test_fill_mask_length_groups_give_the_one_padded_pass_loss_and_gradient(no_dropout_checkpoint):
    """A long doc among short ones: the MLM pass runs in length groups, with the same loss and
    encoder gradient as one forward over the whole padded batch."""
    nlp = every_pipeline(no_dropout_checkpoint, 1)
    fill_mask = nlp.get_pipe("fill_mask")
    long_text = " ".join(t for t, _ in NER_DATA + CAT_DATA) * 2
    examples = [Example(d, d) for d in (nlp.make_doc(t) for t in [long_text] + [t for t, _ in NER_DATA])]
    state = fill_mask._generator.get_state()
    batch = fill_mask.masked_batch([eg.predicted for eg in examples])
    from spacy_mlm.pipes._mlm_batch import length_groups

    assert len(length_groups(batch["attention_mask"].sum(1).tolist())) == 2
    predicted = batch["labels"] != -100
    encoder = fill_mask.upstream_model.transformer
    encoder.train()
    hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    expected = torch.nn.functional.cross_entropy(fill_mask.tied_head()(hidden[predicted]), batch["labels"][predicted])
    expected.backward()
    g1 = encoder_grad(nlp)
    fill_mask._generator.set_state(state)
    loss = fill_mask.update(examples, losses={})["fill_mask"]
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(encoder_grad(nlp), g1, rtol=1e-4, atol=1e-5 * float(g1.abs().max()))
