"""The `spacy-mlm` command line (also `python -m spacy_mlm`)."""

import sys
from pathlib import Path
from typing import Optional

import click

from .errors import SpacyMlmError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spacy-mlm")
def cli() -> None:
    """spacy-mlm: masked-language-model encoders in spaCy."""


def load_fill_mask_pipeline(model: str, top_k: Optional[int] = None):
    """A spaCy pipeline with fill_mask from a pipeline dir/package or an HF checkpoint dir/name."""
    import spacy

    from .heads import check_checkpoint

    path = Path(model)
    if (path / "config.cfg").is_file() or (not path.exists() and spacy.util.is_package(model)):
        nlp = spacy.load(model)
        if "fill_mask" not in nlp.pipe_names:
            raise SpacyMlmError(f"The pipeline {model!r} has no fill_mask component: add one and save it again.")
    else:
        check_checkpoint(model)
        nlp = spacy.blank("en")
        nlp.add_pipe("transformer", config={"model": {"name": model}})
        nlp.add_pipe("fill_mask")
        nlp.initialize()
    if top_k is not None:
        nlp.get_pipe("fill_mask").top_k = top_k
    return nlp


@cli.command("fill-mask")
@click.argument("model")
@click.argument("text")
@click.option("--top-k", type=int, default=None, help="Predictions per mask (default: the pipe's top_k).")
def fill_mask_command(model: str, text: str, top_k: Optional[int]) -> None:
    """Print the predictions for each mask token in TEXT.

    MODEL is a spaCy pipeline directory or package with a fill_mask pipe, or an HF
    masked-LM checkpoint directory (or hub name).
    """
    from wasabi import msg

    nlp = load_fill_mask_pipeline(model, top_k)
    doc = nlp(text)
    mask = nlp.get_pipe("fill_mask").mask_token
    if not doc._.fill_mask:
        msg.warn(f"No mask token in the text: write {mask} where a word should be predicted.")
        return
    for n, predictions in enumerate(doc._.fill_mask, start=1):
        rows = [(i, p["token_str"], f"{p['score']:.4f}", p["sequence"]) for i, p in enumerate(predictions, 1)]
        msg.table(rows, header=("#", "token", "score", "sequence"), title=f"{mask} #{n}", divider=True)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except SpacyMlmError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
