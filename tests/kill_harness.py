"""Kill `spacy-mlm pretrain` with SIGKILL at random moments, resume it, check what it resumes from.

Used by tests/test_pretrain_kill_resume.py (a few kills; `python -m bench pretrain kill-resume` runs that test with many).
One chain: start the real CLI, kill it at a moment drawn from a seeded RNG, check that every
step_* checkpoint on disk is complete, resume with --resume and check from the log line that it
started from the newest complete checkpoint; repeat; then let the last resume finish and
compare its final weights and metrics with an uninterrupted run.

The first run and the last resume start the `spacy-mlm` console script. The runs in between
are forked from a process that has imported spacy_mlm once and each calls the same CLI
entry point (spacy_mlm.cli.main) in a fresh child: the same code path, without 5 s of
imports per kill (launcher="exec" starts every run the slow way).

Kill moments, relative to training progress read from metrics.jsonl and the checkpoint folder
(so a slow machine does not shift them): inside a checkpoint write (once its temporary directory
exists; SPACY_MLM_TEST_CHECKPOINT_PAUSE stretches the write so kills land in it), inside the
write of final/, at any step, or during start-up.
"""

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from safetensors import safe_open
from safetensors.torch import load_file

CONFIG = Path(__file__).parent.parent / "configs" / "pretrain.cfg"
# Tiny and fast: 8 sequences of 32 tokens per step, a checkpoint every 3 steps.
MAX_STEPS, CHECKPOINT_EVERY = 33, 3
SETTINGS = {"training.seq_length": 32, "training.batch_tokens": 256, "training.warmup_steps": 2,
            "training.eval_sequences": 16, "logging.progress_bar": "false", "corpus.shuffle_buffer": 16,
            "training.max_steps": MAX_STEPS, "training.eval_frequency": 8,
            "training.checkpoint_frequency": CHECKPOINT_EVERY, "training.keep_checkpoints": 2,
            "system.threads": 1}
PAUSE = 0.05  # seconds between the files of a checkpoint (the test seam)
CHECKPOINT_FILES = ("config.json", "model.safetensors", "trainer_state.safetensors")
TIMEOUT = 180.0


@dataclass
class KillReport:
    tried: int = 0
    survived: int = 0
    in_checkpoint_write: int = 0  # kills that left a half-written checkpoint directory behind (none there before)
    in_final_write: int = 0  # ... a half-written final/ directory
    finished_before_kill: int = 0
    modes: Dict[str, int] = field(default_factory=dict)
    resumed_from: List[int] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    weights_equal: bool = False
    metrics_equal: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.survived}/{self.tried} kills survived ({self.in_checkpoint_write} inside a checkpoint write, "
                f"{self.in_final_write} inside the final write; kill moments {self.modes}); final weights equal to "
                f"the uninterrupted run: {self.weights_equal}; metrics equal: {self.metrics_equal}; "
                f"{self.seconds:.0f} s")


def cli_command(out: Path, train: Path, dev: Path, model: Path, resume: bool = False) -> List[str]:
    exe = Path(sys.executable).parent / "spacy-mlm"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "spacy_mlm"]
    args = {"paths.train": train, "paths.dev": dev, "paths.base_model": model, **SETTINGS}
    return [*cli, "pretrain", str(CONFIG), str(out), *(x for k, v in args.items() for x in (f"--{k}", str(v))),
            *(["--resume"] if resume else [])]


ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
PAUSE_ENV = "SPACY_MLM_TEST_CHECKPOINT_PAUSE"


def start(cmd: List[str], log: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, **ENV, PAUSE_ENV: str(pause)}
    with log.open("wb") as f:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)


# The fork server: imports the CLI once, then per request forks a child that runs
# spacy_mlm.cli.main(args) with stdout/stderr in a log file; replies "pid" then the wait status.
FORK_SERVER = r"""
import json, os, sys, traceback
import spacy_mlm.cli, spacy_mlm.pretrain.loop
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(req["env"])
        code = 0
        try:
            spacy_mlm.cli.main(req["args"], prog_name="spacy-mlm")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, **ENV})
        self.buffer = b""
        self.current: Optional["ForkedRun"] = None

    def readline(self, timeout: Optional[float]) -> Optional[str]:
        """The next reply line; None if none came within timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError("the fork server exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def start(self, cmd: List[str], log: Path, pause: float) -> "ForkedRun":
        if not hasattr(self, "ready"):
            self.ready = self.readline(TIMEOUT)
        args = cmd[cmd.index("pretrain"):]
        request = {"args": args, "log": str(log), "env": {PAUSE_ENV: str(pause)}}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        self.current = ForkedRun(self, int(self.readline(TIMEOUT)))
        return self.current

    def close(self) -> None:
        if self.current is not None and self.current.poll() is None:
            self.current.kill()  # the harness stopped early: don't leave a run behind
            self.current.wait(timeout=30)
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ForkedRun:
    """The subprocess.Popen methods the harness uses, for a child of the fork server."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server, self.pid, self.returncode = server, pid, None

    def poll(self, timeout: Optional[float] = 0.0) -> Optional[int]:
        if self.returncode is None:
            line = self.server.readline(timeout)
            if line is not None:
                self.returncode = os.waitstatus_to_exitcode(int(line))
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.poll(timeout) is None:
            raise subprocess.TimeoutExpired("spacy-mlm pretrain", timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not yet reaped, so the pid is still this child's
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def logged_steps(metrics: Path) -> List[int]:
    if not metrics.exists():
        return []
    steps = []
    for line in metrics.read_text(encoding="utf8", errors="replace").split("\n")[:-1]:  # complete lines only
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass
    return steps


def wait_for(proc: subprocess.Popen, log: Path, condition, what: str) -> bool:
    """Poll until condition() holds; False if the process exited first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"timed out waiting for {what}; log:\n{log.read_text()[-2000:]}")
        time.sleep(0.005)
    return True


def resume_line(log: Path) -> Optional[str]:
    if not log.exists():  # a forked child creates it
        return None
    for line in log.read_text(encoding="utf8", errors="replace").splitlines():
        if line.startswith(("Resuming from ", "No complete checkpoint in ")):
            return line
    return None


def complete_checkpoints(out: Path) -> Tuple[List[int], List[str]]:
    """Steps of the step_* checkpoints, checked independently of the loop: every file there and
    loadable. Returns (steps, problems)."""
    steps, problems = [], []
    ckpt_dir = out / "checkpoints"
    for path in sorted(ckpt_dir.glob("step_*")) if ckpt_dir.is_dir() else []:
        try:
            for name in CHECKPOINT_FILES:
                if name.endswith(".safetensors"):
                    load_file(str(path / name))
            with safe_open(str(path / "trainer_state.safetensors"), "pt") as f:
                state = json.loads(f.metadata()["trainer_state"])
            json.loads((path / "config.json").read_text(encoding="utf8"))
            assert state["state"]["step"] == int(path.name.split("_")[1]), "step differs from the name"
            steps.append(state["state"]["step"])
        except Exception as e:  # any failure: a half-written checkpoint is visible under a final name
            problems.append(f"{path.name} is not complete: {type(e).__name__}: {e}")
    return steps, problems


def half_written(out: Path) -> Optional[str]:
    """"checkpoint" or "final" if the kill left a temporary (being written) or aside (being
    replaced or deleted) directory of that kind, else None."""
    for folder, kind in ((out / "checkpoints", "checkpoint"), (out, "final")):
        if folder.is_dir() and any(p.name.startswith((".tmp-", ".old-")) and p.is_dir() for p in folder.iterdir()):
            return kind
    return None


def metrics_records(out: Path) -> List[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf8").splitlines()]


def run_kill_chain(root: Path, train: Path, dev: Path, model: Path, kills: int, seed: int = 0,
                   pause: float = PAUSE, launcher: str = "fork", verbose: bool = False) -> KillReport:
    """Kill, check, resume `kills` times, then finish and compare with an uninterrupted run."""
    server = ForkServer() if launcher == "fork" else None  # imports while the first run starts
    try:
        return _kill_chain(root, train, dev, model, kills, seed, pause, server, verbose)
    finally:
        if server is not None:
            server.close()


def _kill_chain(root, train, dev, model, kills, seed, pause, server, verbose) -> KillReport:
    t0 = time.perf_counter()
    rng = random.Random(seed)
    report = KillReport(weights_equal=True, metrics_equal=True)
    ref_out = root / "uninterrupted"
    shutil.rmtree(ref_out, ignore_errors=True)
    # The reference runs beside the chain: same CLI, same settings, no kill.
    reference = start(cli_command(ref_out, train, dev, model), root / "uninterrupted.log", 0.0)
    rounds: List[Path] = []
    try:
        while report.tried < kills and not report.problems:
            # A round: kill and resume until the run is past its last checkpoint, then finish it.
            out = root / f"killed{len(rounds) + 1:02d}"
            shutil.rmtree(out, ignore_errors=True)
            _kill_round(out, train, dev, model, kills, rng, pause, server, first=not rounds, report=report,
                        verbose=verbose)
            rounds.append(out)
    finally:
        if reference.poll() is None and sys.exc_info()[0] is not None:
            reference.kill()  # the harness failed: don't leave the reference run behind
    if reference.wait(timeout=TIMEOUT) != 0:
        report.problems.append(f"uninterrupted run failed: {(root / 'uninterrupted.log').read_text()[-1500:]}")
    elif not report.problems:
        a, ma = load_file(str(ref_out / "final" / "model.safetensors")), metrics_records(ref_out)
        for out in rounds:
            b, mb = load_file(str(out / "final" / "model.safetensors")), metrics_records(out)
            report.weights_equal &= a.keys() == b.keys() and all(
                a[k].shape == b[k].shape and float((a[k] - b[k]).abs().max()) <= 1e-6 for k in a)
            report.metrics_equal &= [m["step"] for m in ma] == [m["step"] for m in mb] and all(
                abs(x.get("loss", 0) - y.get("loss", 0)) <= 1e-6 for x, y in zip(ma, mb))
            if half_written(out):
                report.problems.append(f"temporary directories left in {out} after the finished run")
    report.weights_equal &= not report.problems
    report.metrics_equal &= not report.problems
    report.seconds = time.perf_counter() - t0
    return report


def _kill_round(out, train, dev, model, kills, rng, pause, server, first, report, verbose) -> None:
    last_checkpoint = max(range(CHECKPOINT_EVERY, MAX_STEPS, CHECKPOINT_EVERY))
    resume_step: Optional[int] = None  # None: fresh run
    killed = False  # the previous run was killed: the next resume tells whether it was survived
    n = 0
    while report.tried < kills and (resume_step or 0) < last_checkpoint:
        n += 1
        log = out.parent / f"{out.name}-run{n:03d}.log"
        cmd = cli_command(out, train, dev, model, resume=resume_step is not None)
        use_exec = server is None or (first and n == 1)  # the first run of all: the console script
        left_over = half_written(out)  # by an earlier kill: not this kill's doing
        proc = start(cmd, log, pause) if use_exec else server.start(cmd, log, pause)
        base = 0
        if resume_step is not None:
            base = _check_resume(proc, log, resume_step, killed, report, f"{out.name} run {n}")
            if base is None:
                return
        mode = rng.choices(["checkpoint", "anywhere", "final", "startup"], weights=[5, 4, 1, 1])[0]
        # Small advances (the next checkpoint or two), so a round holds several kills.
        future = [s for s in range(CHECKPOINT_EVERY, MAX_STEPS, CHECKPOINT_EVERY) if s > base][:2]
        if mode == "checkpoint" and not future:
            mode = "anywhere"
        metrics = out / "metrics.jsonl"
        if mode == "startup":
            # A fresh run: during imports, model loading or the first steps; a resumed one: just
            # after it picked its checkpoint (loading it, first steps).
            time.sleep(rng.uniform(0, 5.0) if resume_step is None else rng.uniform(0, 0.3))
            alive = proc.poll() is None
        else:
            target = {"checkpoint": rng.choice(future) if future else 0, "final": MAX_STEPS}.get(
                mode, min(MAX_STEPS, base + rng.randint(1, 7)))
            alive = wait_for(proc, log, lambda t=target, m=metrics: any(s >= t for s in logged_steps(m)),
                             f"step {target}")
            if mode == "checkpoint" and alive:
                # Aimed at the write itself, which starts after the step's eval and logging: wait
                # for its temporary directory (or its end, if missed), then kill within the 3
                # pauses it takes at least. A fixed delay after the log line missed it under load.
                tmp, done = (out / "checkpoints" / f"{name}step_{target:08d}" for name in (".tmp-", ""))
                alive = wait_for(proc, log, lambda a=tmp, b=done: a.exists() or b.exists(), f"checkpoint {target}'s write")
            # After step N is logged: the eval (every 8 steps), the next step, or final/ (2 pauses).
            window = {"checkpoint": 3 * pause, "final": 3 * pause + 0.05}.get(mode, 0.15)
            time.sleep(rng.uniform(0, window))
        if alive and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=TIMEOUT)
        killed = proc.returncode == -signal.SIGKILL
        where = half_written(out)
        if killed:
            report.tried += 1
            report.modes[mode] = report.modes.get(mode, 0) + 1
            report.in_checkpoint_write += where == "checkpoint" and left_over is None
            report.in_final_write += where == "final" and left_over is None
        elif proc.returncode == 0:
            report.finished_before_kill += 1  # nothing killed; --resume redoes the tail
        else:
            report.problems.append(f"{out.name} run {n} failed (rc {proc.returncode}): {log.read_text()[-1500:]}")
            return
        steps, problems = complete_checkpoints(out)
        report.problems.extend(f"{out.name} after kill {report.tried}: {p}" for p in problems)
        resume_step = max(steps, default=0)
        if verbose:
            print(f"{out.name} run {n}: {mode}, killed={killed}, checkpoints {steps}, half-written: {where}",
                  flush=True)
    # The last resume runs to the end.
    log = out.parent / f"{out.name}-final.log"
    cmd = cli_command(out, train, dev, model, resume=True)
    proc = start(cmd, log, 0.0) if server is None or report.tried >= kills else server.start(cmd, log, 0.0)
    if _check_resume(proc, log, resume_step or 0, killed, report, f"{out.name} final resume") is None:
        return
    if proc.wait(timeout=TIMEOUT) != 0:
        report.problems.append(f"{out.name} final resume failed: {log.read_text()[-1500:]}")


def _check_resume(proc, log: Path, expected: int, killed: bool, report: KillReport, name: str) -> Optional[int]:
    """Wait for the resume line; check it names the newest complete checkpoint. Returns its step."""
    if not wait_for(proc, log, lambda: resume_line(log) is not None, "the resume line"):
        report.problems.append(f"{name} exited before resuming (rc {proc.returncode}): {log.read_text()[-1500:]}")
        return None
    line = resume_line(log)
    got = int(line.rsplit("(step ", 1)[1].rstrip(")")) if line.startswith("Resuming") else 0
    report.resumed_from.append(got)
    if got != expected:
        report.problems.append(f"{name} resumed from step {got}; the newest complete checkpoint is step {expected}")
    elif killed:
        report.survived += 1
    return got
