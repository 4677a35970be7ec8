"""trf_ner: spaCy's entity recognizer reading the shared transformer through a listener."""

from typing import Callable, Optional

from spacy.language import Language
from spacy.pipeline import EntityRecognizer
from spacy.training import Example
from thinc.api import Model

from ._listener import LISTENER_CONFIG, ScaledHead, check_transformer_before, warn_unseen_labels, with_head_lr_scale
from ._runtime import prepare_pipe_process

# 1.0 by default: with spaCy's default optimizer (Adam 1e-3, what nlp.initialize() returns) a
# 10x head runs at 1e-2 and training becomes unstable. The shipped configs, whose fine-tuning
# rates are 1e-4 or lower, set more (full.cfg's trf_ner 10; ner.cfg's trf_tagger_ner 30).
HEAD_LR_SCALE = 1.0

DEFAULT_TRF_NER_MODEL = {
    "@architectures": "spacy.TransitionBasedParser.v2",
    "state_type": "ner",
    "extra_state_tokens": False,
    "hidden_width": 64,
    "maxout_pieces": 2,
    "use_upper": False,
    "nO": None,
    "tok2vec": LISTENER_CONFIG,
}


NER_CONFIG = {
    "model": DEFAULT_TRF_NER_MODEL,
    "moves": None,
    "update_with_oracle_cut_size": 100,
    "incorrect_spans_key": None,
    "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    "head_lr_scale": HEAD_LR_SCALE,
}
# What spaCy's beam_ner adds to ner (beam_width 4 and update prob 1: what BENCHMARKS.md measured).
BEAM_CONFIG = {"beam_width": 4, "beam_density": 0.01, "beam_update_prob": 1.0}
NER_FACTORY = {
    "assigns": ["doc.ents", "token.ent_iob", "token.ent_type"],
    "requires": ["doc._.trf_data"],
    "default_score_weights": {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
}


@Language.factory("trf_ner", default_config=NER_CONFIG, **NER_FACTORY)
def make_trf_ner(
    nlp: Language,
    name: str,
    model: Model,
    moves: Optional[object],
    update_with_oracle_cut_size: int,
    incorrect_spans_key: Optional[str],
    scorer: Optional[Callable],
    head_lr_scale: float,
) -> "TrfEntityRecognizer":
    """spaCy's `ner` with a TransformerListener model: add it after a `transformer` and train.
    head_lr_scale: the NER head's learning rate as a multiple of the optimizer's (the encoder's)."""
    prepare_pipe_process()
    ner = TrfEntityRecognizer(
        nlp.vocab, model, name=name, moves=moves, update_with_oracle_cut_size=update_with_oracle_cut_size,
        incorrect_spans_key=incorrect_spans_key, scorer=scorer,
    )
    return with_head_lr_scale(ner, head_lr_scale)


@Language.factory("trf_beam_ner", default_config={**NER_CONFIG, **BEAM_CONFIG}, **NER_FACTORY)
def make_trf_beam_ner(
    nlp: Language,
    name: str,
    model: Model,
    moves: Optional[object],
    update_with_oracle_cut_size: int,
    incorrect_spans_key: Optional[str],
    scorer: Optional[Callable],
    head_lr_scale: float,
    beam_width: int,
    beam_density: float,
    beam_update_prob: float,
) -> "TrfEntityRecognizer":
    """trf_ner with spaCy's beam search (what `beam_ner` is to `ner`): it keeps beam_width
    analyses per doc in training and prediction. head_lr_scale 1: with 10 the beam's larger
    updates made WNUT-17 F1 worse (BENCHMARKS.md)."""
    prepare_pipe_process()
    ner = TrfEntityRecognizer(
        nlp.vocab, model, name=name, moves=moves, update_with_oracle_cut_size=update_with_oracle_cut_size,
        beam_width=beam_width, beam_density=beam_density, beam_update_prob=beam_update_prob,
        incorrect_spans_key=incorrect_spans_key, scorer=scorer,
    )
    return with_head_lr_scale(ner, head_lr_scale)


class TrfEntityRecognizer(ScaledHead, EntityRecognizer):
    """EntityRecognizer that checks its transformer and warns on dev labels unseen in training."""

    def initialize(self, get_examples: Callable, *, nlp: Optional[Language] = None, labels=None):
        check_transformer_before(self, nlp)
        return super().initialize(get_examples, nlp=nlp, labels=labels)

    def score(self, examples, **kwargs):
        examples = list(examples)
        gold = {ent.label_ for eg in examples if isinstance(eg, Example) for ent in eg.reference.ents}
        warn_unseen_labels(self.name, gold, set(self.labels))
        return super().score(examples, **kwargs)
