"""spaCy components that read the shared `transformer` component's output."""

from .fill_mask import FillMask, make_fill_mask
from .similarity import TrfSimilarity, make_trf_similarity

__all__ = ["FillMask", "make_fill_mask", "TrfSimilarity", "make_trf_similarity"]
