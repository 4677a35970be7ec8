"""Thinc layers for the pipes' listener models."""

from typing import Callable, Tuple

from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ragged


@registry.layers("spacy_mlm.reduce_first.v1")
def reduce_first() -> Model[Ragged, Floats2d]:
    """Each token's first wordpiece vector, the one HF token classifiers read. A token with no
    wordpiece (a control character the tokenizer drops) gets zeros, as with reduce_mean:
    thinc's reduce_first raises on such tokens."""
    return Model("spacy_mlm.reduce_first", _reduce_first_forward)


def _reduce_first_forward(model: Model, Xr: Ragged, is_train: bool) -> Tuple[Floats2d, Callable]:
    ops = model.ops
    lengths = ops.asarray1i(Xr.lengths)
    starts = ops.xp.cumsum(lengths) - lengths
    present = ops.xp.nonzero(lengths > 0)[0]
    X = Xr.dataXd
    Y = ops.alloc2f(lengths.shape[0], X.shape[1], dtype=X.dtype)
    Y[present] = X[starts[present]]

    def backprop(dY: Floats2d) -> Ragged:
        dX = ops.alloc2f(*X.shape, dtype=dY.dtype)
        dX[starts[present]] = dY[present]
        return Ragged(dX, Xr.lengths)

    return Y, backprop
