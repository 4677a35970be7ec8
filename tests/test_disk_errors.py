"""Full disk and read-only directories: pretraining and nlp.to_disk fail with a message that names
the path and the fix, and leave the previous checkpoint / pipeline intact and loadable."""

import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest
import spacy
import torch
from safetensors.torch import load_file

import spacy_mlm.pretrain.checkpoint as checkpoint
from spacy_mlm.cli import main as cli_main
from spacy_mlm.errors import DiskWriteError, SpacyMlmError
from spacy_mlm.pretrain.checkpoint import TRAINER_STATE, checkpoint_problem
from spacy_mlm.pretrain.loop import pretrain
from spacy_mlm.util import safe_to_disk

from . import disk_faults
from .conftest import make_nlp
from .pretrain_fixtures import CONFIG, overrides, stopped_run

pytest_plugins = ["tests.pretrain_fixtures"]

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def chmod_stops_writes() -> bool:
    """False as root (CAP_DAC_OVERRIDE): chmod a-w does not stop the writes then."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ro"
        folder.mkdir(mode=0o555)
        try:
            (folder / "probe").touch()
        except PermissionError:
            return True
        finally:
            folder.chmod(0o755)
        return False


NO_CHMOD = not chmod_stops_writes()
ROOT_SKIP = "runs as root: chmod does not stop root from writing (the injected-EACCES variant covers this path)"


def entries(path):
    return sorted(p.name for p in path.iterdir())


def assert_same_weights(a_dir, b_dir):
    a, b = load_file(str(a_dir / "model.safetensors")), load_file(str(b_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def run_opts(pt_corpus, pt_model):
    return overrides(*pt_corpus, pt_model, training__max_steps=6, training__eval_frequency=0,
                     training__checkpoint_frequency=2, training__keep_checkpoints=2, system__threads=1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, run_opts):
    """The uninterrupted run the recovered ones must equal."""
    return pretrain(CONFIG, tmp_path_factory.mktemp("ref") / "out", run_opts)


# ------------------------------------------------------------------------ pretraining


def test_disk_full_in_checkpoint_write_keeps_previous_checkpoint(tmp_path, monkeypatch, run_opts, reference):
    """ENOSPC while writing checkpoint 4 (optimizer file half written): clear error, checkpoint 2
    untouched and no temporary directory left; --resume from it reaches the uninterrupted weights."""
    real_save_file = checkpoint.save_file

    def full_disk(tensors, filename, *args, **kwargs):
        if "step_00000004" in filename and filename.endswith(TRAINER_STATE):
            with open(filename, "wb") as f:
                f.write(b"\0" * 1000)  # what fitted before the disk filled up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real_save_file(tensors, filename, *args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(DiskWriteError) as exc:
        pretrain(CONFIG, out, run_opts)
    message = str(exc.value)
    assert f"Could not write the checkpoint to {out / 'checkpoints' / 'step_00000004'}: the disk is full" in message
    assert "[Errno 28] No space left on device" in message and "Fix: free space on the file system" in message
    assert re.search(r"the last complete checkpoint, .*step_00000002, is intact .* --resume", message)
    assert isinstance(exc.value, OSError) and exc.value.errno == errno.ENOSPC
    assert entries(out / "checkpoints") == ["step_00000002"]  # the half-written one was removed
    assert checkpoint_problem(out / "checkpoints" / "step_00000002") is None
    monkeypatch.setattr(checkpoint, "save_file", real_save_file)
    assert_same_weights(reference, pretrain(CONFIG, out, run_opts, resume=True))


def test_real_write_failure_file_size_limit(tmp_path, run_opts):
    """A real failed write (RLIMIT_FSIZE: the kernel refuses to grow a file, EFBIG), raised by the
    Rust safetensors writer inside save_pretrained: same clear error, previous checkpoint intact."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def limit(step, _):
        if step == 3:  # checkpoint 2 is written: from now on no file may grow past 100 kB
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))

    out = tmp_path / "out"
    try:
        with pytest.raises(DiskWriteError) as exc:
            pretrain(CONFIG, out, run_opts, on_step=limit)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(exc.value)
    assert f"Could not write the checkpoint to {out / 'checkpoints' / 'step_00000004'}" in message
    assert "[Errno 27] File too large" in message and "step_00000002, is intact" in message
    assert entries(out / "checkpoints") == ["step_00000002"]
    assert checkpoint_problem(out / "checkpoints" / "step_00000002") is None


def _check_read_only_pretrain(out, run_opts, capsys):
    before = disk_faults.tree_digest(out)
    with pytest.raises(DiskWriteError) as exc:
        pretrain(CONFIG, out, run_opts, resume=True)
    message = str(exc.value)
    assert f"Could not write the run file to {out / 'run.json'}: the directory is read-only" in message
    assert f"Fix: make {out} writable (chmod u+w" in message
    assert "step_00000004, is intact" in message
    # The CLI prints the message, no traceback, exit status 1.
    args = ["pretrain", str(CONFIG), str(out), "--resume",
            *(x for k, v in run_opts.items() for x in (f"--{k}", json.dumps(v) if not isinstance(v, str) else v))]
    with pytest.raises(SystemExit) as exit_:
        cli_main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("Error: Could not write the run file") and "Traceback" not in err
    assert disk_faults.tree_digest(out) == before  # nothing changed, nothing half-written


def _run_with_checkpoints(tmp_path, run_opts):
    """A run killed after checkpoint 4, to resume into a now read-only directory."""
    return stopped_run(tmp_path / "out", run_opts, after_step=5)


def test_read_only_output_dir_injected(tmp_path, monkeypatch, run_opts, capsys):
    out = _run_with_checkpoints(tmp_path, run_opts)
    disk_faults.read_only(monkeypatch, out)
    _check_read_only_pretrain(out, run_opts, capsys)
    # A fresh run into a read-only (mounted) directory: EROFS.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    disk_faults.read_only(monkeypatch, fresh, errno.EROFS)
    with pytest.raises(DiskWriteError, match=r"run\.json: the directory is read-only .*Read-only file system.* "
                                             r"No checkpoint has been written yet"):
        pretrain(CONFIG, fresh, run_opts)


@pytest.mark.skipif(NO_CHMOD, reason=ROOT_SKIP)
def test_read_only_output_dir_chmod(tmp_path, run_opts, capsys):
    out = _run_with_checkpoints(tmp_path, run_opts)
    paths = [out, *out.rglob("*")]
    for path in paths:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        _check_read_only_pretrain(out, run_opts, capsys)
    finally:
        for path in paths:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


# ------------------------------------------------------------------------ nlp.to_disk


@pytest.fixture(scope="module")
def nlp(pt_model):
    return make_nlp(pt_model, "fill_mask", "trf_similarity")


TEXT = "the capital of [MASK] is paris"


def predictions(nlp_):
    doc = nlp_(TEXT)
    return [p["token"] for p in doc._.fill_mask[0]], doc.vector


def assert_loads_like(path, nlp_):
    ids, vector = predictions(spacy.load(path))
    ref_ids, ref_vector = predictions(nlp_)
    assert ids == ref_ids
    assert np_close(vector, ref_vector)


def np_close(a, b) -> bool:
    return bool(abs(a - b).max() < 1e-5)


def test_safe_to_disk_replaces_atomically(tmp_path, monkeypatch, nlp):
    path = tmp_path / "pipeline"
    assert safe_to_disk(nlp, path) == path
    monkeypatch.setitem(nlp.meta, "version", "0.0.2")
    safe_to_disk(nlp, path)  # over an existing pipeline: renameat2 exchange where available
    assert entries(tmp_path) == ["pipeline"]
    assert spacy.load(path).meta["version"] == "0.0.2"
    monkeypatch.setattr("spacy_mlm.util._exchange", lambda a, b: False)  # the two-rename fallback
    monkeypatch.setitem(nlp.meta, "version", "0.0.3")
    safe_to_disk(nlp, path)
    assert entries(tmp_path) == ["pipeline"] and spacy.load(path).meta["version"] == "0.0.3"
    assert_loads_like(path, nlp)
    # A kill between the fallback's two renames leaves the old copy aside: the next save (or
    # spacy_mlm.util.restore_replaced) puts it back first.
    path.rename(tmp_path / ".old-pipeline")
    from spacy_mlm.util import restore_replaced

    restore_replaced(path)
    assert entries(tmp_path) == ["pipeline"]


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_safe_to_disk_on_full_disk_keeps_previous_pipeline(tmp_path, monkeypatch, nlp, fraction):
    path = tmp_path / "pipeline"
    safe_to_disk(nlp, path)
    before = disk_faults.tree_digest(path)
    size = sum(len(b) for b in before.values())
    disk_faults.disk_full(monkeypatch, tmp_path, int(size * fraction))
    with pytest.raises(DiskWriteError) as exc:
        safe_to_disk(nlp, path)
    message = str(exc.value)
    assert message.startswith(f"Could not write the pipeline to {path}: the disk is full")
    assert "No space left on device" in message and "The previous pipeline at that path, if any, is unchanged" in message
    monkeypatch.undo()
    assert entries(tmp_path) == ["pipeline"]  # temporary copy removed, space given back
    assert disk_faults.tree_digest(path) == before
    assert_loads_like(path, nlp)


def test_plain_to_disk_on_full_disk(tmp_path, monkeypatch, nlp):
    """nlp.to_disk writes in place (spaCy): our pipes fail with a clear error that points to
    safe_to_disk; a failure inside spaCy's own writers can leave a pipeline that no longer loads."""
    path = tmp_path / "pipeline"
    nlp.to_disk(path)
    sizes = disk_faults.tree_digest(path)
    before_fill_mask = sum(len(b) for k, b in sizes.items() if not k.startswith(("fill_mask", "trf_similarity", "vocab")))
    disk_faults.disk_full(monkeypatch, tmp_path, before_fill_mask + 10)
    with pytest.raises(DiskWriteError) as exc:
        nlp.to_disk(path)
    message = str(exc.value)
    assert message.startswith(f"Could not write the 'fill_mask' component to {path / 'fill_mask'}: the disk is full")
    assert "spacy_mlm.util.safe_to_disk(nlp, path)" in message
    monkeypatch.undo()
    assert not list(path.rglob(".tmp-*"))  # our files are replaced atomically: no truncated head file
    assert_loads_like(path, nlp)
    # Full inside the transformer's weights (spaCy/spacy-transformers code): a truncated file.
    transformer_start = sum(len(b) for k, b in sizes.items() if not k.startswith(("transformer", "fill_mask",
                                                                                   "trf_similarity", "vocab")))
    disk_faults.disk_full(monkeypatch, tmp_path, transformer_start + 1000)
    with pytest.raises(OSError, match="No space left on device"):
        nlp.to_disk(path)
    monkeypatch.undo()
    # The transformer component's msgpack data was cut short by the full disk.
    with pytest.raises(ValueError, match="Unpack failed: incomplete input"):
        spacy.load(path)


def _check_read_only_to_disk(root, path, nlp_):
    before = disk_faults.tree_digest(path)
    with pytest.raises(DiskWriteError) as exc:
        safe_to_disk(nlp_, path)
    message = str(exc.value)
    assert message.startswith(f"Could not write the pipeline to {path}: the directory is read-only")
    assert f"Fix: make {root} writable (chmod u+w" in message
    # Plain nlp.to_disk: spaCy's own PermissionError, naming the file.
    with pytest.raises(PermissionError, match=re.escape(str(path))):
        nlp_.to_disk(path)
    assert disk_faults.tree_digest(path) == before
    assert entries(root) == ["pipeline"]


def test_read_only_to_disk_injected(tmp_path, monkeypatch, nlp):
    root = tmp_path / "ro"
    safe_to_disk(nlp, root / "pipeline")
    disk_faults.read_only(monkeypatch, root)
    _check_read_only_to_disk(root, root / "pipeline", nlp)
    monkeypatch.undo()
    assert_loads_like(root / "pipeline", nlp)


@pytest.mark.skipif(NO_CHMOD, reason=ROOT_SKIP)
def test_read_only_to_disk_chmod(tmp_path, nlp):
    root = tmp_path / "ro"
    safe_to_disk(nlp, root / "pipeline")
    paths = [root, *root.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        _check_read_only_to_disk(root, root / "pipeline", nlp)
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    assert_loads_like(root / "pipeline", nlp)


def test_disk_write_error_is_both_error_kinds():
    err = DiskWriteError("message", errno.ENOSPC, "/x")
    assert isinstance(err, SpacyMlmError) and isinstance(err, OSError) and str(err) == "message"
