"""Nothing lost: every command that writes refuses to replace or delete what it did not create
(spacy_mlm/safe_output.py). Each refusal exits with status 1 (2 where click itself refuses the
path), prints `Error: ` and a message that names the path and the fix, no traceback, and leaves
every file that existed before byte for byte unchanged.

--force decides as follows: it lets a command write into a non-empty directory it did not write,
replacing only the entries with the names of those it writes; every other file there (a user's
notes) survives unchanged. It never allows an output that is, lies inside or holds an input, and
never a tokenizer beside a model's weights.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spacy_mlm.safe_output import OUTPUT_MARKER

from .pretrain_fixtures import CONFIG, overrides
from .util import digest, run_cli

pytest_plugins = ["tests.pretrain_fixtures"]

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

CONLL = "Paris\tB-LOC\nis\tO\nnice\tO\n\nRome\tB-LOC\nis\tO\nold\tO\n"
NOTES = "my notes: keep me\n"


def refused(root: Path, args, capsys, *fragments: str, code: int = 1) -> str:
    """Run the command; it must fail with `code`, print the fragments, change nothing under root."""
    before = digest(root)
    got, out, err = run_cli(args, capsys)
    assert got == code, out + err
    assert "Traceback" not in out + err
    assert err.startswith("Error: ") or code == 2, err
    for fragment in fragments:
        assert fragment in err, err
    assert digest(root) == before
    return err


def cli_overrides(opts: dict) -> list:
    return [x for k, v in opts.items() for x in (f"--{k}", v if isinstance(v, str) else json.dumps(v))]


@pytest.fixture
def work(tmp_path, pt_corpus, pt_model, pt_tokenizers, pt_pipeline):
    """Copies of every input under tmp_path, so that a command that wrongly writes harms no shared fixture."""
    (tmp_path / "data").mkdir()
    corpus = shutil.copy(pt_corpus[0], tmp_path / "data" / "train.txt")
    conll = tmp_path / "data" / "ner.conll"
    conll.write_text(CONLL, encoding="utf8")
    models = tmp_path / "models"
    shutil.copytree(pt_tokenizers["wordpiece"], models / "tok")
    shutil.copytree(pt_model, models / "bert")
    shutil.copytree(pt_pipeline, models / "pipeline")
    return {"root": tmp_path, "corpus": Path(corpus), "conll": conll, "tok": models / "tok",
            "model": models / "bert", "pipeline": models / "pipeline"}


def pretrain_args(w, out, *flags, **extra):
    settings = dict(training__max_steps=1, training__eval_frequency=0, training__checkpoint_frequency=0,
                    system__threads=1)
    opts = overrides(w["corpus"], None, w["model"], **{**settings, **extra})
    return ["pretrain", CONFIG, out, *flags, *cli_overrides(opts)]


# command -> (its input under `work`, args writing to an output, the kind of output)
COMMANDS = {
    "convert": ("conll", lambda w, out: ["convert", w["conll"], out, "--kind", "ner"], "file"),
    "init-config": ("model", lambda w, out: ["init-config", "pretrain", out, "--base-model", w["model"]], "file"),
    "tokenizer": ("corpus", lambda w, out: ["tokenizer", w["corpus"], out, "--vocab-size", "100"], "dir"),
    "init-model": ("tok", lambda w, out: ["init-model", out, "--tokenizer", w["tok"], "--max-length", "64"], "dir"),
    "quantize": ("pipeline", lambda w, out: ["quantize", w["pipeline"], out, "--dtype", "int8"], "dir"),
    "pretrain": ("model", lambda w, out: pretrain_args(w, out), "dir"),
}


def output_for(w, command: str, where: str) -> Path:
    source = w[COMMANDS[command][0]]
    if where == "equal":
        return source
    if where == "inside":
        return source / ("out.cfg" if COMMANDS[command][2] == "file" else "out")
    return source.parent  # "parent"


# (command, where): the cases that make sense. A file output cannot be a parent of an input
# (convert's OUTPUT directory gets <input>.spacy *beside* the input: allowed, see below); click
# itself refuses an existing directory as init-config's file and an existing file as tokenizer's
# directory, with status 2.
OVERLAPS = [
    ("convert", "equal", 1, "is the input"), ("convert", "inside", 1, "is inside the input"),
    ("init-config", "equal", 2, "is a directory"), ("init-config", "inside", 1, "is inside the input"),
    ("tokenizer", "equal", 2, "is a file"), ("tokenizer", "inside", 1, "is inside the input"),
    ("tokenizer", "parent", 1, "holds the input"),
    ("init-model", "equal", 1, "is the input"), ("init-model", "inside", 1, "is inside the input"),
    ("init-model", "parent", 1, "holds the input"),
    ("quantize", "equal", 1, "is the input"), ("quantize", "inside", 1, "is inside the input"),
    ("quantize", "parent", 1, "holds the input"),
    ("pretrain", "equal", 1, "is the input"), ("pretrain", "inside", 1, "is inside the input"),
    ("pretrain", "parent", 1, "holds the input"),
]


@pytest.mark.parametrize("command,where,code,fragment", OVERLAPS, ids=[f"{c}-{w}" for c, w, _, _ in OVERLAPS])
@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_output_overlapping_an_input_is_refused(work, capsys, command, where, code, fragment, force):
    out = output_for(work, command, where)
    args = COMMANDS[command][1](work, out)
    if force:
        args.append("--force")
    err = refused(work["root"], args, capsys, fragment, str(out), code=code)
    if code == 1:
        assert str(work[COMMANDS[command][0]]) in err and "--force does not allow this" in err


def test_convert_into_the_input_directory_writes_beside_the_input(work, capsys):
    before = digest(work["root"])
    code, out, err = run_cli(["convert", work["conll"], work["conll"].parent, "--kind", "ner"], capsys)
    assert code == 0, out + err
    assert (work["conll"].parent / "ner.spacy").is_file()
    assert {k: v for k, v in digest(work["root"]).items() if k in before} == before


@pytest.mark.parametrize("command", list(COMMANDS))
def test_existing_output_needs_force(work, capsys, command):
    """A non-empty directory the command did not write (dir outputs) or an existing file (file
    outputs): refused; the message names the path and --force."""
    _, make_args, kind = COMMANDS[command]
    out = work["root"] / "out"
    if kind == "file":
        out.write_text(NOTES, encoding="utf8")
        refused(work["root"], make_args(work, out), capsys, f"The output file {out} already exists", "--force")
    else:
        out.mkdir()
        (out / "notes.txt").write_text(NOTES, encoding="utf8")
        (out / "data.csv").write_text("a,b\n", encoding="utf8")
        refused(work["root"], make_args(work, out), capsys, f"The output directory {out} is not empty",
                "notes.txt", "pass --force")


@pytest.mark.parametrize("command", [c for c, (_, _, kind) in COMMANDS.items() if kind == "dir"])
def test_output_directory_that_is_a_file_is_refused(work, capsys, command):
    out = work["root"] / "out"
    out.write_text(NOTES, encoding="utf8")
    for flags in ([], ["--force"]):
        # click's Path(file_okay=False) refuses it before the command runs.
        refused(work["root"], COMMANDS[command][1](work, out) + flags, capsys, str(out), "is a file", code=2)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_force_replaces_only_the_commands_own_files(work, capsys, command):
    """--force: the output is written, the user's unrelated file beside it and every input are unchanged."""
    _, make_args, kind = COMMANDS[command]
    out = work["root"] / "out"
    out.mkdir()
    notes = out / "notes.txt"
    notes.write_text(NOTES, encoding="utf8")
    target = out / "result" if kind == "file" else out
    if kind == "file":
        target.write_text("old", encoding="utf8")
    before = digest(work["root"])
    code, stdout, err = run_cli(make_args(work, target) + ["--force"], capsys)
    assert code == 0, stdout + err
    after = digest(work["root"])
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed <= {str(target.relative_to(work["root"]))}, changed  # only its own output
    assert notes.read_text(encoding="utf8") == NOTES
    if kind == "file":
        assert target.read_bytes() != b"old"
    elif command == "pretrain":
        assert (out / "final" / "model.safetensors").is_file() and (out / "run.json").is_file()
    else:
        assert json.loads((out / OUTPUT_MARKER).read_text())["command"] == f"spacy-mlm {command}"


def test_rerun_into_own_output_replaces_it_and_keeps_user_files(work, capsys):
    """A previous output of the same command is replaced without --force: its own files go (even
    those the new output does not write), the user's files stay."""
    out = work["root"] / "tok"
    assert run_cli(["tokenizer", work["corpus"], out, "--vocab-size", "100"], capsys)[0] == 0
    assert (out / "vocab.txt").is_file()
    (out / "notes.txt").write_text(NOTES, encoding="utf8")
    assert run_cli(["tokenizer", work["corpus"], out, "--vocab-size", "300", "--kind", "bpe"], capsys)[0] == 0
    assert not (out / "vocab.txt").exists() and (out / "merges.txt").is_file()
    assert (out / "notes.txt").read_text(encoding="utf8") == NOTES
    assert json.loads((out / OUTPUT_MARKER).read_text())["command"] == "spacy-mlm tokenizer"
    # Another command's output is not this command's.
    refused(work["root"], ["init-model", out, "--tokenizer", work["tok"]], capsys,
            f"The output directory {out} is not empty", "is an output of `spacy-mlm tokenizer`", "pass --force")


# ------------------------------------------------------------------------ the reported cases


def test_quantize_never_replaces_the_pipeline_its_parent_or_a_users_directory(work, capsys):
    pipeline = work["pipeline"]
    refused(work["root"], ["quantize", pipeline, pipeline, "--dtype", "int8"], capsys,
            f"The output {pipeline} is the input {pipeline}")
    refused(work["root"], ["quantize", pipeline, pipeline.parent, "--dtype", "int8", "--force"], capsys,
            f"The output {pipeline.parent} holds the input {pipeline}")
    users = work["root"] / "users"
    users.mkdir()
    (users / "thesis.tex").write_text(NOTES, encoding="utf8")
    refused(work["root"], ["quantize", pipeline, users, "--dtype", "int8"], capsys,
            f"The output directory {users} is not empty (it holds thesis.tex)", "pass --force")


def test_convert_onto_its_input_is_refused_by_the_installed_command(work):
    """The real `python -m spacy_mlm` process: exit status 1, one line on stderr, no traceback."""
    before = digest(work["root"])
    conll = work["conll"]
    proc = subprocess.run([sys.executable, "-m", "spacy_mlm", "convert", str(conll), str(conll), "--kind", "ner",
                           "--force"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Error: The output {conll} is the input {conll}: writing it would replace the input. Write to another "
        "path (--force does not allow this).")
    assert digest(work["root"]) == before


def test_tokenizer_into_a_model_directory_is_refused_even_with_force(work, capsys):
    model = work["model"]
    for flags in ([], ["--force"]):
        refused(work["root"], ["tokenizer", work["corpus"], model, "--vocab-size", "100", *flags], capsys,
                f"The output directory {model} holds a model (model.safetensors)", "Save the tokenizer to a new directory")


@pytest.fixture
def finished_run(work, capsys):
    """A finished pretraining run (steps 1-3) with one checkpoint (step 2) and final/."""
    out = work["root"] / "run"
    settings = dict(training__max_steps=3, training__checkpoint_frequency=2, training__keep_checkpoints=1)
    code, stdout, err = run_cli(pretrain_args(work, out, **settings), capsys)
    assert code == 0, stdout + err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002"]
    return out, lambda *flags: pretrain_args(work, out, *flags, **settings)


def test_resume_with_a_damaged_only_checkpoint_keeps_the_finished_run(work, capsys, finished_run):
    out, args = finished_run
    # Usable checkpoint and final/: --resume continues as before (from step 2).
    code, stdout, err = run_cli(args("--resume"), capsys)
    assert code == 0 and "Resuming from" in stdout and "(step 2)" in stdout, stdout + err
    # The only checkpoint truncated: --resume would restart at step 0 and replace final/ and the log.
    ckpt = out / "checkpoints" / "step_00000002"
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    err = refused(work["root"], args("--resume"), capsys, f"Cannot resume {out}",
                  f"{ckpt} is damaged (model.safetensors is truncated or damaged",
                  f"{out / 'final'} holds the finished model", f"rm -r {ckpt}", "--force instead of --resume")
    assert "start again at step 0 and replace" in err and str(out / "metrics.jsonl") in err
    # The second choice works: --force starts a fresh run.
    code, stdout, err = run_cli(args("--force"), capsys)
    assert code == 0, stdout + err
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_resume_of_a_finished_run_without_checkpoints_is_refused(work, capsys):
    out = work["root"] / "run"
    assert run_cli(pretrain_args(work, out), capsys)[0] == 0  # checkpoint_frequency 0: only final/
    refused(work["root"], pretrain_args(work, out, "--resume"), capsys, f"Cannot resume {out}: it has no checkpoint",
            f"--paths.base_model {out / 'final'}", "--force instead of --resume")


def test_pretrain_refuses_to_resume_a_directory_it_did_not_write(work, capsys):
    out = work["root"] / "out"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "mine": true}\n', encoding="utf8")
    refused(work["root"], pretrain_args(work, out, "--resume"), capsys,
            f"The output directory {out} is not empty (it holds metrics.jsonl)", "--force")


# ------------------------------------------------------------------------ the project's copy steps

PROJECT_SCRIPTS = Path(__file__).resolve().parent.parent / "project" / "scripts"


def script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_SCRIPTS / name), *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_project_copy_steps_follow_the_rule(work):
    """raw_text.py and prepare_base.py: an input's directory and a foreign directory are refused
    (status 1, `Error: ` and the fix, nothing changed); a rerun replaces their own output and keeps
    a user's file."""
    root, corpus = work["root"], work["corpus"]
    before = digest(root)
    proc = script("raw_text.py", corpus.parent, "--text", corpus)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith(f"Error: The output {corpus.parent} holds the input {corpus} (it is one of "
                                        f"its parent directories): writing it could replace or delete the input. Write "
                                        f"to a directory that does not contain {corpus} (--force does not allow this).")
    users = root / "users"
    users.mkdir()
    (users / "notes.txt").write_text(NOTES, encoding="utf8")
    before = digest(root)
    proc = script("prepare_base.py", work["model"], users)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (f"Error: The output directory {users} is not empty (it holds notes.txt) and is not an output of "
            "`python scripts/prepare_base.py`") in proc.stderr and "pass --force" in proc.stderr
    assert digest(root) == before
    raw = root / "raw"
    assert script("raw_text.py", raw, "--text", corpus).returncode == 0
    (raw / "notes.txt").write_text(NOTES, encoding="utf8")
    assert script("raw_text.py", raw, "--text", work["conll"]).returncode == 0  # its own output: replaced
    assert sorted(p.name for p in raw.iterdir()) == [OUTPUT_MARKER, "ner.conll.txt", "notes.txt"]
    assert (raw / "notes.txt").read_text(encoding="utf8") == NOTES
