"""Every command against every hostile input and output path: one table-driven matrix.

Each cell runs one `spacy-mlm` command in this process with one bad input (empty, binary, not
UTF-8, a 1 MB line, another format, a damaged checkpoint, missing, a directory where a file is
expected or the reverse, unreadable) or one bad output (the input itself, inside it, its parent, a
non-empty directory the command did not write, an existing file). A cell passes when

- the command exits with a status other than 0 (a cell in ACCEPTED, where the input is legal or
  the output harms nothing by design: with 0, having written its output),
- nothing on stdout or stderr is a Python traceback, and the message is not a dump of the input,
- the message names the culprit (the bad input's or output's path),
- every file that existed under the cell's directory before the command is byte for byte the same
  after it (files the command created are allowed).

The per-case tests with their exact messages are in test_user_errors.py and test_safe_outputs.py;
this file is the one place that shows which command meets which hostile path.

The unreadable cells are skipped where chmod 000 does not stop reads (root). To run them as root,
drop the capabilities that let root read anything:
    capsh --drop=cap_dac_override,cap_dac_read_search -- -c "python -m pytest tests/test_bad_inputs.py"
"""

import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from spacy_mlm.init_config import default_config_text

from .pretrain_fixtures import CONFIG
from .test_user_errors import PRETRAIN
from .util import digest, run_cli, truncate

pytest_plugins = ["tests.pretrain_fixtures"]

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

NOTES = "my notes: keep me\n"
MEGABYTE_LINE = "Paris " + "x" * (1 << 20)  # one 1 MB line: a word, then one run of 1,048,576 characters
BINARY = bytes(range(256)) * 64
# The longest message a refusal may print: a message that quotes a whole 1 MB line is no message.
MAX_MESSAGE = 5000


def chmod_denies_reads() -> bool:
    """False as root (CAP_DAC_OVERRIDE): chmod 000 does not stop root from reading."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.write_text("x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return True
        finally:
            probe.chmod(stat.S_IRUSR | stat.S_IWUSR)
        return False


CHMOD_DENIES_READS = chmod_denies_reads()
ROOT_SKIP = ("chmod 000 does not stop this user from reading (root, with CAP_DAC_OVERRIDE): no file is unreadable "
             "here; see the module docstring")


# ------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Format:
    """What a command reads. A file format: `good` is valid content (its first line holds "Paris"),
    `wrong` (suffix, content) a file of another format. A directory format: `good` names the
    shared fixture, `key` the file the binary, damaged and unreadable cases spoil, `text` the text
    file the latin-1 case re-encodes and `wrong` the name of another fixture."""

    suffix: str
    good: Optional[str]
    wrong: object = None
    directory: bool = False
    key: str = ""
    text: str = ""


CONLL = "Paris\tB-LOC\nis\tO\nnice\tO\n\nRome\tB-LOC\nis\tO\nold\tO\n"
STS = ("main-captions\tMSRvid\t2012test\t0001\t4.0\tParis is nice.\tParis is pretty.\n"
       "main-captions\tMSRvid\t2012test\t0002\t1.0\tA man plays a flute.\tA dog runs.\n")
JSONL = '{"text": "Paris is nice", "label": "pos"}\n{"text": "Rome is old", "label": "neg"}\n'
FORMATS = {
    "conll": Format(".conll", CONLL, wrong=(".conll", JSONL)),
    "textcat": Format(".tsv", "pos\tParis is nice\nneg\tRome is old\n", wrong=(".tsv", STS)),
    "sts": Format(".tsv", STS, wrong=(".tsv", JSONL)),
    "texts": Format(".txt", "Paris is nice\nRome is old\n", wrong=(".txt", JSONL)),
    "labels": Format(".txt", "Paris\nRome\n", wrong=(".txt", "Paris is nice\nRome is old\n")),
    "corpus": Format(".txt", None, wrong=(".jsonl", CONLL)),  # good: the pretraining corpus (`shared`)
    "config": Format(".cfg", None, wrong=(".cfg", default_config_text("ner"))),  # good: configs/pretrain.cfg
    "checkpoint": Format("", "checkpoint", wrong="tokenizer", directory=True, key="model.safetensors",
                         text="config.json"),
    "pipeline": Format("", "pipeline", wrong="checkpoint", directory=True, key="transformer/model",
                       text="config.cfg"),
    "tokenizer": Format("", "tokenizer", wrong="checkpoint-config", directory=True, key="tokenizer.json",
                        text="tokenizer.json"),
}


class Workspace:
    """The cell's directory: fresh copies of the good inputs (so that a command that wrongly
    writes harms no shared fixture) and the hostile paths."""

    def __init__(self, root: Path, shared: dict) -> None:
        self.root, self.shared = root, shared
        (root / "in").mkdir()
        (root / "bad").mkdir()

    def good(self, name: str) -> Path:
        """A copy of the good input of format `name` under in/ (made once per cell)."""
        fmt = FORMATS[name]
        path = self.root / "in" / (name + fmt.suffix)
        if not path.exists():
            if fmt.directory:
                shutil.copytree(self.shared[fmt.good], path)
            else:
                path.write_text(self.good_text(name), encoding="utf8")
        return path

    def good_text(self, name: str) -> str:
        return FORMATS[name].good or self.shared[name]

    def bad(self, name: str, fmt: Format) -> Path:
        return self.root / "bad" / (name + fmt.suffix)


def _file_or_dir(make_file: Callable[[Workspace, str, Path], None],
                 edit_dir: Optional[Callable[[Workspace, Format, Path], None]] = None):
    """A case: for a file format, make_file(w, name, path) writes the hostile file; for a directory
    format, a copy of the good directory is spoilt by edit_dir(w, fmt, path)."""

    def make(w: Workspace, name: str) -> Path:
        fmt = FORMATS[name]
        path = w.bad(name, fmt)
        if fmt.directory:
            shutil.copytree(w.shared[fmt.good], path)
            edit_dir(w, fmt, path)
        else:
            make_file(w, name, path)
        return path

    return make


def first_line_replaced(text: str, line: str) -> str:
    return line + "\n" + text.split("\n", 1)[1]


def to_latin1(w: Workspace, name: str, path: Path) -> None:
    path.write_bytes(w.good_text(name).replace("Paris", "Café", 1).encode("latin-1"))


def text_to_latin1(w: Workspace, fmt: Format, path: Path) -> None:
    text_file = path / fmt.text
    text = text_file.read_text(encoding="utf8")
    edited = "# Café\n" + text if text_file.suffix == ".cfg" else text.replace("{", '{"comment": "Café", ', 1)
    text_file.write_bytes(edited.encode("latin-1"))


def wrong_format(w: Workspace, name: str) -> Path:
    fmt = FORMATS[name]
    if fmt.directory:
        path = w.bad(name, fmt)
        if fmt.wrong == "checkpoint-config":  # a model's config.json, no tokenizer
            path.mkdir()
            shutil.copy(w.shared["checkpoint"] / "config.json", path / "config.json")
        else:
            shutil.copytree(w.shared[FORMATS[fmt.wrong].good], path)
        return path
    suffix, content = fmt.wrong
    path = w.root / "bad" / (name + suffix)
    path.write_text(content, encoding="utf8")
    return path


def unreadable(w: Workspace, name: str) -> Path:
    fmt = FORMATS[name]
    path = w.bad(name, fmt)
    if fmt.directory:
        shutil.copytree(w.shared[fmt.good], path)
        (path / fmt.key).chmod(0)
    else:
        path.write_text(w.good_text(name), encoding="utf8")
        path.chmod(0)
    return path


def missing(w: Workspace, name: str) -> Path:
    return w.bad(name, FORMATS[name])


def wrong_kind(w: Workspace, name: str) -> Path:
    """A directory where a file is expected, a file where a directory is."""
    path = w.bad(name, FORMATS[name])
    if FORMATS[name].directory:
        path.write_text("Paris is nice\n", encoding="utf8")
    else:
        path.mkdir()
    return path


def spoil_key(edit: Callable[[Path], None]):
    return lambda w, fmt, path: edit(path / fmt.key)


# case -> (makes the hostile input of a format: (workspace, format name) -> path, formats it applies to)
ALL, FILES, DIRS = "all", "files", "dirs"
INPUT_CASES = {
    "empty": (_file_or_dir(lambda w, n, p: p.write_bytes(b""),
                           lambda w, f, p: (shutil.rmtree(p), p.mkdir())), ALL),
    "binary": (_file_or_dir(lambda w, n, p: p.write_bytes(BINARY), spoil_key(lambda k: k.write_bytes(BINARY))), ALL),
    "latin1": (_file_or_dir(to_latin1, text_to_latin1), ALL),
    "huge-line": (_file_or_dir(lambda w, n, p: p.write_text(first_line_replaced(w.good_text(n), MEGABYTE_LINE))),
                  FILES),
    "wrong-format": (wrong_format, ALL),
    "damaged": (_file_or_dir(None, spoil_key(truncate)), DIRS),
    "missing": (missing, ALL),
    "wrong-kind": (wrong_kind, ALL),
    "unreadable": (unreadable, ALL),
}


# What a directory case spoils: the culprit the message must name is that file, not only the directory.
SPOILT = {"binary": "key", "damaged": "key", "unreadable": "key", "latin1": "text"}
# Cases whose message must also say what is wrong with the culprit (one of these, in any case).
SAYS = {"missing": ("does not exist", "not found", "no such"), "unreadable": ("permission denied", "not readable"),
        "wrong-kind": ("is a directory", "corpus directory", "is a file", "not a directory")}


# ------------------------------------------------------------------------------------ outputs


def output_path(w: Workspace, writes: str, where: Optional[Path] = None) -> Path:
    """Where a command writes its output: a new path under the cell's directory (or `where`)."""
    return (where or w.root) / ("result.spacy" if writes == "convert" else "result.cfg" if writes == "config"
                                else "result")


def foreign_dir(w: Workspace) -> Path:
    path = w.root / "users"
    path.mkdir()
    (path / "notes.txt").write_text(NOTES, encoding="utf8")
    (path / "data.csv").write_text("a,b\n", encoding="utf8")
    return path


def existing_file(w: Workspace, writes: str) -> Path:
    path = output_path(w, writes)
    path.write_text(NOTES, encoding="utf8")
    return path


# case -> (input, writes) -> the output path
OUTPUT_CASES = {
    "out-is-input": lambda w, inp, writes: inp,
    "out-inside-input": lambda w, inp, writes: output_path(w, writes, inp),
    "out-parent-of-input": lambda w, inp, writes: inp.parent,
    "out-foreign-dir": lambda w, inp, writes: foreign_dir(w),
    "out-existing-file": lambda w, inp, writes: existing_file(w, writes),
}


# ------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Command:
    """A command with one input under test: argv(w, input, output) and what the input is (a key of
    FORMATS). writes: how its output is named ("convert": a .spacy file, "config": a .cfg file,
    "dir": a directory); None for commands that write nothing."""

    argv: Callable[[Workspace, Path, Path], list]
    reads: str
    writes: Optional[str] = None


def pretrain(config: Path, out: Path, corpus: Path, base_model: Path) -> list:
    return ["pretrain", config, out, "--paths.train", corpus, "--paths.base_model", base_model, *PRETRAIN]


MASKED = "the [MASK] is paris"
COMMANDS = {
    "convert-ner": Command(lambda w, i, o: ["convert", i, o, "--kind", "ner"], "conll", "convert"),
    "convert-textcat": Command(lambda w, i, o: ["convert", i, o, "--kind", "textcat"], "textcat", "convert"),
    "convert-sts": Command(lambda w, i, o: ["convert", i, o, "--kind", "sts"], "sts", "convert"),
    "convert-labels-texts": Command(lambda w, i, o: ["convert", i, o, "--kind", "textcat", "--labels", w.good("labels")],
                                    "texts", "convert"),
    "convert-labels": Command(lambda w, i, o: ["convert", w.good("texts"), o, "--kind", "textcat", "--labels", i],
                              "labels", "convert"),
    "tokenizer": Command(lambda w, i, o: ["tokenizer", i, o, "--vocab-size", "100"], "corpus", "dir"),
    "init-model": Command(lambda w, i, o: ["init-model", o, "--tokenizer", i, "--max-length", "64"], "tokenizer", "dir"),
    "init-config-ner": Command(lambda w, i, o: ["init-config", "ner", o, "--base-model", i], "checkpoint", "config"),
    "init-config-dapt": Command(lambda w, i, o: ["init-config", "dapt", o, "--base-model", i], "checkpoint", "config"),
    "pretrain-config": Command(lambda w, i, o: pretrain(i, o, w.good("corpus"), w.good("checkpoint")), "config", "dir"),
    "pretrain-corpus": Command(lambda w, i, o: pretrain(w.good("config"), o, i, w.good("checkpoint")), "corpus", "dir"),
    "pretrain-base-model": Command(lambda w, i, o: pretrain(w.good("config"), o, w.good("corpus"), i),
                                   "checkpoint", "dir"),
    "score-model": Command(lambda w, i, o: ["score", i, w.good("corpus"), "--max-docs", "2"], "checkpoint"),
    "score-corpus": Command(lambda w, i, o: ["score", w.good("checkpoint"), i, "--max-docs", "2"], "corpus"),
    "fill-mask-checkpoint": Command(lambda w, i, o: ["fill-mask", i, MASKED], "checkpoint"),
    "fill-mask-pipeline": Command(lambda w, i, o: ["fill-mask", i, MASKED], "pipeline"),
    "quantize": Command(lambda w, i, o: ["quantize", i, o, "--dtype", "int8"], "pipeline", "dir"),
}

CONVERTS = [name for name, command in COMMANDS.items() if command.writes == "convert"]
# (command, case) -> why the command succeeds there: the input is legal, or the output harms nothing.
ACCEPTED = {
    **{(name, "out-parent-of-input"): "OUTPUT is a directory: <INPUT name>.spacy is written into it, beside the "
                                      "input" for name in CONVERTS},
    **{(name, "out-foreign-dir"): "OUTPUT is a directory: <INPUT name>.spacy is added to it, nothing else there "
                                  "changes" for name in CONVERTS},
    ("convert-textcat", "huge-line"): "a 1 MB text after its label is an example",
    ("convert-labels-texts", "huge-line"): "every line of the text file is a text, 1 MB long or not",
    ("convert-labels-texts", "wrong-format"): "every line of the text file is a text, JSON or not",
    ("tokenizer", "huge-line"): "a 1 MB line is text (its run without spaces is left out of training)",
    ("pretrain-corpus", "huge-line"): "a 1 MB line is a document",
    ("score-corpus", "huge-line"): "a 1 MB line is a document, scored window by window",
    ("fill-mask-pipeline", "wrong-format"): "fill-mask takes an HF checkpoint as well as a pipeline",
    ("init-config-ner", "missing"): "the config may name a model on the training machine, or one not trained yet",
}


def applies(command: Command, case: str) -> bool:
    if case in OUTPUT_CASES:
        return command.writes is not None
    scope = INPUT_CASES[case][1]
    return scope == ALL or (scope == DIRS) == FORMATS[command.reads].directory


def cell(name: str, case: str):
    marks = []
    if case == "unreadable" and not CHMOD_DENIES_READS:
        marks.append(pytest.mark.skip(reason=ROOT_SKIP))
    return pytest.param(name, case, marks=marks, id=f"{name}-{case}")


CELLS = [cell(name, case) for name, command in COMMANDS.items() for case in [*INPUT_CASES, *OUTPUT_CASES]
         if applies(command, case)]


@pytest.fixture(scope="module")
def shared(pt_corpus, pt_model, pt_pipeline, pt_tokenizers):
    """The good inputs the cells copy."""
    return {"checkpoint": pt_model, "pipeline": pt_pipeline, "tokenizer": pt_tokenizers["wordpiece"],
            "corpus": "Paris is the capital of France.\n" + pt_corpus[0].read_text(encoding="utf8"),
            "config": "# Paris\n" + CONFIG.read_text(encoding="utf8")}


def restore_permissions(root: Path) -> None:
    for path in root.rglob("*"):
        if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) == 0:
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize("name,case", CELLS)
def test_bad_input(tmp_path, capsys, shared, name, case):
    command = COMMANDS[name]
    w = Workspace(tmp_path, shared)
    if case in OUTPUT_CASES:
        source = w.good(command.reads)
        out = culprit = OUTPUT_CASES[case](w, source, command.writes)
    else:
        source = culprit = INPUT_CASES[case][0](w, command.reads)
        fmt = FORMATS[command.reads]
        if fmt.directory and case in SPOILT:
            culprit = source / getattr(fmt, SPOILT[case])
        out = output_path(w, command.writes)
    args = command.argv(w, source, out)
    before = digest(tmp_path)
    try:
        code, stdout, err = run_cli(args, capsys)
        after = digest(tmp_path)
    finally:
        restore_permissions(tmp_path)
    shown = f"$ spacy-mlm {' '.join(map(str, args))}\n--- exit {code}, stdout:\n{stdout[-3000:]}\n--- stderr:\n{err[-3000:]}"
    assert "Traceback" not in stdout + err, shown
    if (name, case) in ACCEPTED:
        assert code == 0, shown
        assert command.writes is None or set(after) - set(before), f"exit 0, but nothing was written\n{shown}"
    else:
        assert code not in (0, None), shown
        assert str(culprit) in err, shown
        assert case not in SAYS or any(words in err.lower() for words in SAYS[case]), shown
        assert len(err) < MAX_MESSAGE, f"a message of {len(err):,} characters:\n{err[:2000]}"
    changed = sorted(path for path in before if after.get(path) != before[path])
    assert not changed, f"changed or removed: {changed}\n{shown}"


def test_the_matrix_covers_every_command():
    """Every command of the CLI has rows (named after it), and every ACCEPTED cell is a cell of the matrix."""
    from spacy_mlm.cli import cli

    uncovered = [n for n in cli.commands if not any(row == n or row.startswith(n + "-") for row in COMMANDS)]
    assert not uncovered
    cells = {tuple(param.values) for param in CELLS}
    assert set(ACCEPTED) <= cells, set(ACCEPTED) - cells
