"""trf_similarity's training losses, as sentence-transformers defines them, chosen in the config:

    [components.similarity.loss]
    @misc = "spacy_mlm.CoSENTLoss.v1"   # scored pairs (STS); or spacy_mlm.MNRLoss.v1 for positive pairs
    scale = 20.0

A loss takes the pooled vectors of the pairs' first and second sentences, (n, width) each, and
their gold scores (n,) or None (positive pairs), and returns a scalar tensor.
"""

from typing import Optional

import torch
from spacy.util import registry


class CoSENTLoss:
    """CoSENT (Su, 2022; sentence-transformers' CoSENTLoss): for every two pairs of the batch
    whose gold scores are ordered, a softmax-style penalty when their cosines are not:
    log(1 + sum over (i, j) with gold_i < gold_j of exp(scale * (cos_i - cos_j))).
    Only the order of the scores matters, so 0-5 STS scores need no rescaling."""

    needs_scores = True

    def __init__(self, scale: float = 20.0):
        self.scale = scale

    def __call__(self, a: torch.Tensor, b: torch.Tensor, scores: Optional[torch.Tensor]) -> torch.Tensor:
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1) * self.scale
        diff = cos[:, None] - cos[None, :]
        diff = diff.masked_fill(~(scores[:, None] < scores[None, :]), float("-inf"))
        return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


class MNRLoss:
    """MultipleNegativesRankingLoss (sentence-transformers'): each first sentence must pick its
    own second sentence among all second sentences of the batch (in-batch negatives):
    cross-entropy over scale * cos(a_i, b_j), target j = i. Bigger batches, harder negatives."""

    needs_scores = False

    def __init__(self, scale: float = 20.0):
        self.scale = scale

    def __call__(self, a: torch.Tensor, b: torch.Tensor, scores: Optional[torch.Tensor]) -> torch.Tensor:
        a = torch.nn.functional.normalize(a, dim=-1)
        b = torch.nn.functional.normalize(b, dim=-1)
        logits = a @ b.T * self.scale
        return torch.nn.functional.cross_entropy(logits, torch.arange(len(a), device=logits.device))


@registry.misc("spacy_mlm.CoSENTLoss.v1")
def create_cosent_loss(scale: float = 20.0) -> CoSENTLoss:
    return CoSENTLoss(scale)


@registry.misc("spacy_mlm.MNRLoss.v1")
def create_mnr_loss(scale: float = 20.0) -> MNRLoss:
    return MNRLoss(scale)
