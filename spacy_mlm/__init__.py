"""spacy-mlm: masked-language-model encoders as first-class spaCy citizens."""

from .about import __version__
from .errors import SpacyMlmError
from .pipes import FillMask, TrfSimilarity

__all__ = ["__version__", "SpacyMlmError", "FillMask", "TrfSimilarity"]
