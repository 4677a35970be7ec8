"""Checks shared by the pipes whose model reads the transformer through a TransformerListener."""

import warnings
from typing import Any, Iterable, Optional, Set

from spacy.language import Language

from .. import layers  # noqa: F401  (registers spacy_mlm.reduce_first.v1 for listener configs)
from ._upstream import get_upstream_transformer

LISTENER_CONFIG = {
    "@architectures": "spacy-transformers.TransformerListener.v1",
    "grad_factor": 1.0,
    "upstream": "*",
    "pooling": {"@layers": "reduce_mean.v1"},
}


def listener_upstream(pipe) -> str:
    """The name the pipe's TransformerListener listens to ('*' means any transformer)."""
    from spacy_transformers.layers import TransformerListener

    for node in pipe.model.walk():
        if isinstance(node, TransformerListener):
            return node.upstream_name
    return "*"


class ScaledOptimizer:
    """The optimizer with its learning rate multiplied by ``scale`` (thinc's ``lr_scale``).

    A head trained from scratch on top of a pretrained encoder needs larger steps than the
    encoder's fine-tuning rate: at 1e-4 for a few hundred steps it barely leaves its random
    initialisation. The encoder itself is updated by the transformer component, unscaled."""

    def __init__(self, optimizer: Any, scale: float):
        self.optimizer = optimizer
        self.scale = scale

    def __call__(self, key: Any, weights: Any, gradient: Any, *, lr_scale: float = 1.0):
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


def scaled_optimizer(optimizer: Any, scale: float) -> Any:
    if scale <= 0:
        raise ValueError(f"head_lr_scale must be > 0, got {scale}.")
    return optimizer if scale == 1.0 else ScaledOptimizer(optimizer, scale)


def with_head_lr_scale(pipe: Any, head_lr_scale: float) -> Any:
    scaled_optimizer(None, head_lr_scale)  # validate at construction, not at the first update
    pipe.head_lr_scale = head_lr_scale
    return pipe


class ScaledHead:
    """Mixin: finish_update of the pipe's own model (the head) at head_lr_scale x the rate."""

    head_lr_scale = 1.0

    def finish_update(self, sgd) -> None:
        self.model.finish_update(scaled_optimizer(sgd, self.head_lr_scale))


def check_transformer_before(pipe, nlp: Optional[Language]) -> None:
    """Fail at initialize, with the fix, when no transformer feeds this pipe."""
    if nlp is None:
        return
    upstream = listener_upstream(pipe)
    if upstream == "*":
        from spacy_transformers import Transformer

        names = [name for name, proc in nlp.pipeline if isinstance(proc, Transformer)]
        upstream = names[0] if names else "transformer"
    get_upstream_transformer(nlp, upstream, pipe.name)


def warn_unseen_labels(pipe_name: str, gold_labels: Iterable[str], known: Set[str]) -> None:
    """Evaluation data with labels the model never saw in training: say so, once per label set."""
    unseen = sorted(set(gold_labels) - known)
    if unseen:
        warnings.warn(
            f"'{pipe_name}': the evaluation data has labels absent from the training data: {unseen}. "
            "The model can never predict them, so they count as misses. Add training examples with "
            "these labels or remove them from the dev set.",
            stacklevel=3,
        )
