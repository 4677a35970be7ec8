"""What a process running spacy-mlm pipes needs once: done by every factory when it creates
a pipe, not at import, so that importing the package (which spaCy does for its CLI) stays cheap."""

from ..compat import warn_on_untested_versions
from ._fork import register_fork_handler

_prepared = False


def prepare_pipe_process() -> None:
    """Register the fork handler (nlp.pipe(n_process=N)) and warn on untested library versions."""
    global _prepared
    if not _prepared:
        _prepared = True
        register_fork_handler()
        warn_on_untested_versions()
