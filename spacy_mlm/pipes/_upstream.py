"""Finding the shared `transformer` component a pipe reads from."""

from typing import Optional

from spacy.language import Language

from ..errors import SpacyMlmError


def get_upstream_transformer(nlp: Optional[Language], upstream: str, pipe_name: str):
    """The spacy-transformers `Transformer` component named `upstream`, placed before `pipe_name`."""
    from spacy_transformers import Transformer

    fix = (
        f"add it first: nlp.add_pipe('transformer', before='{pipe_name}', "
        "config={'model': {'name': CHECKPOINT}})"
    )
    if nlp is None or upstream not in nlp.component_names:
        raise SpacyMlmError(f"'{pipe_name}' needs a '{upstream}' component in the pipeline: {fix}.")
    component = nlp.get_pipe(upstream)
    if not isinstance(component, Transformer):
        raise SpacyMlmError(
            f"'{pipe_name}' reads the output of '{upstream}', but that component is a "
            f"{type(component).__name__}, not a spacy-transformers Transformer: {fix}."
        )
    names = nlp.component_names
    if pipe_name in names and names.index(upstream) > names.index(pipe_name):
        raise SpacyMlmError(
            f"'{pipe_name}' comes before '{upstream}' in the pipeline, so it would run on docs "
            f"without transformer output. Add it after: nlp.add_pipe('{pipe_name}', after='{upstream}')."
        )
    return component


def require_trf_data(doc, pipe_name: str, upstream: str):
    trf_data = doc._.get("trf_data") if doc.has_extension("trf_data") else None
    if trf_data is None:
        raise SpacyMlmError(
            f"'{pipe_name}' got a doc without doc._.trf_data: the '{upstream}' component must run "
            f"before it (nlp.add_pipe('transformer', before='{pipe_name}')), and must not be disabled."
        )
    return trf_data
