"""`python -m spacy mlm ...`: the spacy-mlm commands inside spaCy's own CLI.

spaCy imports the modules named by `spacy_cli` entry points while it sets up its CLI (its
`registry.cli.get_all()`), so its typer app is loaded by then and this module adds an `mlm`
command to it that forwards its arguments to `spacy-mlm`. Imported without spaCy loaded, it
adds nothing and imports nothing heavy: importing spaCy imports torch (through thinc).
"""

import sys


def add_mlm_command(app) -> None:
    """Add the `mlm` command to spaCy's typer `app`."""
    import typer

    @app.command(
        "mlm",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )
    def mlm_command(ctx: typer.Context) -> None:
        """spacy-mlm: fill-mask, convert, tokenizer, init-model, init-config, pretrain, score, quantize (see `python -m spacy mlm --help`)."""
        from .cli import main

        main(args=list(ctx.args), prog_name="python -m spacy mlm")


if "spacy.cli._util" in sys.modules:
    add_mlm_command(sys.modules["spacy.cli._util"].app)
