"""trf_textcat / trf_textcat_multilabel: spaCy's text classifiers on the shared transformer."""

from typing import Callable, Iterable, List, Optional

from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model

from ..errors import SpacyMlmError
from ._listener import LISTENER_CONFIG, ScaledHead, check_transformer_before, warn_unseen_labels, with_head_lr_scale
from ._runtime import prepare_pipe_process


def _textcat_model(exclusive: bool) -> dict:
    # Mean of the token vectors, then a linear layer: the sentence-transformers way of
    # turning an encoder into a text representation.
    return {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": exclusive,
        "use_reduce_first": False,
        "use_reduce_last": False,
        "use_reduce_max": False,
        "use_reduce_mean": True,
        "nO": None,
        "tok2vec": LISTENER_CONFIG,
    }


SCORE_WEIGHTS = {
    "cats_score": 1.0, "cats_score_desc": None, "cats_micro_p": None, "cats_micro_r": None,
    "cats_micro_f": None, "cats_macro_p": None, "cats_macro_r": None, "cats_macro_f": None,
    "cats_macro_auc": None, "cats_f_per_type": None,
}


@Language.factory(
    "trf_textcat",
    assigns=["doc.cats"],
    requires=["doc._.trf_data"],
    default_config={
        "threshold": 0.0,
        "model": _textcat_model(exclusive=True),
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
        "head_lr_scale": 1.0,
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_trf_textcat(
    nlp: Language, name: str, model: Model, threshold: float, scorer: Optional[Callable], head_lr_scale: float
) -> "TrfTextCategorizer":
    """spaCy's `textcat` (exactly one label per doc) reading the shared transformer.
    head_lr_scale: the classifier's learning rate as a multiple of the optimizer's (the encoder's)."""
    prepare_pipe_process()
    return with_head_lr_scale(TrfTextCategorizer(nlp.vocab, model, name, threshold=threshold, scorer=scorer), head_lr_scale)


@Language.factory(
    "trf_textcat_multilabel",
    assigns=["doc.cats"],
    requires=["doc._.trf_data"],
    default_config={
        "threshold": 0.5,
        "model": _textcat_model(exclusive=False),
        "scorer": {"@scorers": "spacy.textcat_multilabel_scorer.v2"},
        "head_lr_scale": 1.0,
    },
    default_score_weights=SCORE_WEIGHTS,
)
def make_trf_textcat_multilabel(
    nlp: Language, name: str, model: Model, threshold: float, scorer: Optional[Callable], head_lr_scale: float
) -> "TrfMultiLabelTextCategorizer":
    """spaCy's `textcat_multilabel` (any number of labels per doc) reading the shared transformer."""
    prepare_pipe_process()
    pipe = TrfMultiLabelTextCategorizer(nlp.vocab, model, name, threshold=threshold, scorer=scorer)
    return with_head_lr_scale(pipe, head_lr_scale)


def _gold_labels(examples: Iterable[Example]) -> List[str]:
    return [label for eg in examples for label, value in eg.reference.cats.items() if value]


class TrfTextCategorizer(ScaledHead, TextCategorizer):
    def predict(self, docs: Iterable[Doc]):
        """As TextCategorizer.predict, but a batch of only empty docs gets the scores an empty
        doc gets inside a mixed batch (the output layer on the mean of no tokens, zeros), not
        all-zero scores: the cats of a doc sum to 1 and do not depend on its batch."""
        docs = list(docs)
        if docs and not any(len(doc) for doc in docs) and self.model.has_ref("output_layer"):
            output_layer = self.model.get_ref("output_layer")
            if output_layer.has_dim("nI") and output_layer.get_dim("nI"):
                zeros = output_layer.ops.alloc2f(len(docs), output_layer.get_dim("nI"))
                return output_layer.ops.asarray(output_layer.predict(zeros))
        return super().predict(docs)

    def _examples_to_truth(self, examples: Iterable[Example]):
        """As TextCategorizer's, but a doc with no cats at all (an NER-only doc in a multi-task
        corpus) is missing data, not a doc that belongs to no class: spaCy's exclusive textcat
        would train such docs towards all-zero scores, i.e. 1/n for every label."""
        examples = list(examples)
        truths, not_missing = super()._examples_to_truth(examples)
        for i, eg in enumerate(examples):
            if not eg.reference.cats:
                not_missing[i, :] = 0.0
        return truths, not_missing

    def initialize(self, get_examples: Callable, *, nlp: Optional[Language] = None, labels=None, positive_label=None):
        check_transformer_before(self, nlp)
        return super().initialize(get_examples, nlp=nlp, labels=labels, positive_label=positive_label)

    def _validate_categories(self, examples: Iterable[Example]) -> None:
        for eg in examples:
            positive = [label for label, value in eg.reference.cats.items() if value == 1.0]
            if len(positive) > 1:
                raise SpacyMlmError(
                    f"'{self.name}' (trf_textcat) takes exactly one label per doc, but the doc "
                    f"{eg.reference.text[:60]!r} has {len(positive)}: {positive}. For multi-label data use "
                    "the 'trf_textcat_multilabel' factory (configs/textcat.cfg: factory = \"trf_textcat_multilabel\")."
                )
        super()._validate_categories(examples)

    def score(self, examples, **kwargs):
        # Docs without cats (NER-only docs in a multi-task dev set) are not textcat data.
        examples = [eg for eg in examples if eg.reference.cats]
        warn_unseen_labels(self.name, _gold_labels(examples), set(self.labels))
        return super().score(examples, **kwargs)


class TrfMultiLabelTextCategorizer(ScaledHead, MultiLabel_TextCategorizer):
    def initialize(self, get_examples: Callable, *, nlp: Optional[Language] = None, labels=None):
        check_transformer_before(self, nlp)
        return super().initialize(get_examples, nlp=nlp, labels=labels)

    def score(self, examples, **kwargs):
        # Docs without cats (NER-only docs in a multi-task dev set) are not textcat data.
        examples = [eg for eg in examples if eg.reference.cats]
        warn_unseen_labels(self.name, _gold_labels(examples), set(self.labels))
        return super().score(examples, **kwargs)
