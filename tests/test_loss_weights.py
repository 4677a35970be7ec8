"""Every head's share of the shared encoder's gradient is a config value: fill_mask and
trf_similarity `loss_weight`, the listener heads' (trf_tagger_ner, trf_ner, trf_textcat)
`model.tok2vec.grad_factor`. The encoder's gradient scales with it exactly."""

import pytest
import spacy
import torch
from spacy.training import Example

from spacy_mlm.errors import SpacyMlmError

from .test_ner_textcat import NER_DATA, ner_examples


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
