"""`python -m spacy mlm ...`: the spacy-mlm commands inside spaCy's own CLI.

spaCy imports the modules named by `spacy_cli` entry points before it builds its CLI;
importing this one adds an `mlm` command that forwards its arguments to `spacy-mlm`.
"""

import typer
from spacy.cli._util import app


@app.command(
    "mlm",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def mlm_command(ctx: typer.Context) -> None:
    """spacy-mlm: fill-mask, convert, tokenizer, init-model, pretrain, score (see `python -m spacy mlm --help`)."""
    from .cli import main

    main(args=list(ctx.args), prog_name="python -m spacy mlm")
