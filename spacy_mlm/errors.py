"""Errors users can trigger. Each message names the file, key or value and the fix."""


class SpacyMlmError(ValueError):
    """A user-facing error from spacy-mlm (bad path, config, checkpoint or data)."""
