"""Registered functions (`spacy_mlm.*.v1`) live in spaCy's `misc` registry, so configs
reference them with `@misc = "spacy_mlm.TokenMasking.v1"` like any spaCy function."""

from spacy.util import registry

__all__ = ["registry", "import_registered"]


def import_registered() -> None:
    """Import the modules whose import registers the pretraining functions."""
    from .mlm_data import corpus, masking  # noqa: F401
