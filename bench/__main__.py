"""`python -m bench SUITE ...` from the repository root, or `python path/to/bench SUITE ...` from anywhere
(the project's commands run `python ../bench ...`)."""

import sys
from pathlib import Path

if not __package__:  # run as a folder: import the package from its parent, not the folder's modules
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import click

from bench import common, joint, pipes, precision, pretrain, sts, tasks, workflow


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """spacy-mlm's benchmarks and evaluations (BENCHMARKS.md gives each figure with its command).
    Each suite appends its rows to bench/results/SUITE.jsonl unless --out says otherwise."""
    common.start_run()


for module in (pipes, precision, pretrain, joint, tasks, sts, workflow):
    for command in module.COMMANDS:
        cli.add_command(command)


@cli.command(add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dapt(args) -> None:
    """Domain-adaptive pretraining on tweets: bench/dapt_tweets.py's steps (corpus, pretrain, finetune, summary)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # it imports `common` and `eval_tasks` as top-level modules
    import dapt_tweets

    dapt_tweets.main(list(args))


if __name__ == "__main__":
    cli(prog_name="python -m bench")
