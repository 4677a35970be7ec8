"""spacy-mlm: masked-language-model encoders as first-class spaCy citizens.

Importing the package stays cheap (spaCy imports our `spacy_cli` entry point for every
`python -m spacy` call): the pipe classes, which need torch and transformers, load on first use.
spaCy finds the factories through the `spacy_factories` entry points.
"""

from .about import __version__
from .errors import SpacyMlmError

__all__ = ["__version__", "SpacyMlmError", "FillMask", "TrfSimilarity"]


def __getattr__(name: str):
    if name in ("FillMask", "TrfSimilarity"):
        from . import pipes

        return getattr(pipes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
