"""Data-parallel training on CPU with gloo: replicas stay identical, resume is exact per rank, 2 processes match 1
process on the same global batch (no BatchNorm, fp32, no random augmentation), two torchrun "nodes" on 127.0.0.1
train and checkpoint through ``python -m medgan``, and a killed rank ends the job with its error.

Each torchrun launch costs a torch import per process, so the launches start together in one fixture and several
runs share one launch (tests/distributed_worker.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medgan import cli
from medgan.checkpoint import load_checkpoint
from medgan.errors import ConfigError
from medgan.training.distributed import TrainingModules, World, rank_seed, torchrun_command
from medgan.training.loop import train
from medgan.training.tasks import TaskBase
from medgan.visuals import read_jsonl

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
SMALL_CLI = ["--resolution", "32", "--quiet", "--set", "model.generator_channels=8", "--set",
             "model.discriminator_channels=8", "--set", "train.eval_every=0", "--set", "train.threads=1"]
LAUNCH_TIMEOUT = 240  # seconds; generous: the 2-core test machine is shared


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    """Starts the worker launch (2 processes) and the two one-process "nodes" at once; yields their folders."""
    root = tmp_path_factory.mktemp("distributed")
    worker = subprocess.Popen(torchrun("--standalone", "--nproc-per-node", "2", str(HERE / "distributed_worker.py"),
                                       str(root / "worker")), cwd=root, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    node_args = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                 f"127.0.0.1:{free_port()}", "--rdzv-id", "medgan-test", "-m", "medgan", "train", "--data", "mni152",
                 "--steps", "50", "--out", str(root / "nodes"), "--set", "train.checkpoint_every=25", *SMALL_CLI]
    nodes = [subprocess.Popen(torchrun(*node_args), cwd=root, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    (root / "worker").mkdir()
    yield {"root": root, "worker": worker, "nodes": nodes}
    for process in (worker, *nodes):
        if process.poll() is None:
            process.kill()


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=LAUNCH_TIMEOUT)
    assert process.returncode == 0, output[-4000:]
    return output


def test_replicas_stay_identical_resume_exactly_and_match_one_process(launches):
    finish(launches["worker"])
    out = launches["root"] / "worker"
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["means"] == ranks[1]["means"] == {"a": 0.5, "b": 5.0}
    # The default recipe (BatchNorm G, SN D with minibatch stddev, lazy R1, EMA): every rank ends with the same weights.
    assert ranks[0]["straight"] == ranks[1]["straight"]
    # 4 steps, a checkpoint, a resume to 8: the same weights as 8 steps straight (per-rank noise streams restored).
    assert ranks[0]["resumed"] == ranks[0]["straight"]
    state = load_checkpoint(out / "straight" / "checkpoints" / "latest.pt")
    assert state["loop"]["world_size"] == 2 and len(state["loop"]["ranks"]) == 2
    assert not torch.equal(state["loop"]["ranks"][0]["task_rng"], state["loop"]["ranks"][1]["task_rng"])
    assert sorted(p.name for p in (out / "straight").iterdir() if p.is_dir()) == ["checkpoints", "samples"]


def test_two_processes_match_one_process_on_the_same_global_batch(launches, tmp_path):
    from distributed_worker import paired_config

    finish(launches["worker"])
    two = launches["root"] / "worker" / "paired"
    train(paired_config(3), tmp_path / "one", progress=False)
    one_state = load_checkpoint(tmp_path / "one" / "checkpoints" / "latest.pt")["task"]
    two_state = load_checkpoint(two / "checkpoints" / "latest.pt")["task"]
    for part in ("generator", "discriminator"):
        for key, value in one_state[part].items():
            # fp32 sums in another order: differences of a few 1e-6 after 3 Adam steps of lr 2e-4 (measured 2e-5 max)
            torch.testing.assert_close(two_state[part][key], value, atol=1e-4, rtol=1e-4, msg=f"{part}.{key}")
    one_losses, two_losses = read_jsonl(tmp_path / "one" / "losses.jsonl"), read_jsonl(two / "losses.jsonl")
    for a, b in zip(one_losses, two_losses, strict=True):  # the logged losses are means over the ranks
        assert b["loss_l1"] == pytest.approx(a["loss_l1"], rel=1e-5)
        assert b["loss_d"] == pytest.approx(a["loss_d"], rel=1e-5)


def test_a_different_world_size_resumes_with_a_note(launches):
    finish(launches["worker"])
    run = launches["root"] / "worker" / "straight"
    result = train(None, run, resume=True, progress=False, budget={"steps": 9})
    assert result.steps == 9
    assert "resumed with 1 process(es) from a checkpoint written by 2" in (run / "train.log").read_text()


def test_two_nodes_on_localhost_train_a_run_that_resumes_and_samples(launches, tmp_path):
    outputs = [finish(node) for node in launches["nodes"]]
    assert sum("run directory" in output for output in outputs) == 1  # rank 0 alone reports (and writes)
    run = launches["root"] / "nodes"
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["loop"]["step"] == 50 and state["loop"]["world_size"] == 2
    assert "data-parallel: 2 processes, 16 images each per step" in (run / "train.log").read_text()
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "52", "--quiet"]) == 0
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["loop"]["step"] == 52
    assert cli.main(["sample", "--run", str(run), "--n", "4", "--out", str(tmp_path / "samples")]) == 0
    assert len(list((tmp_path / "samples").glob("*.png"))) == 4


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _rank_of(pid: int) -> int:
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(dict(v.decode().split("=", 1) for v in variables if b"=" in v).get("RANK", -1))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_killing_one_rank_ends_the_job_with_its_error(launches, tmp_path):
    for node in launches["nodes"]:  # after the other launches: this one is timed
        node.wait(timeout=LAUNCH_TIMEOUT)
    launches["worker"].wait(timeout=LAUNCH_TIMEOUT)
    command = [sys.executable, "-m", "medgan", "train", "--nproc", "2", "--data", "mni152", "--steps", "100000",
               "--out", str(tmp_path / "run"), "--timeout", "30", "--set", "train.log_every=1", *SMALL_CLI]
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        while not (tmp_path / "run" / "losses.jsonl").exists():  # both ranks are training
            assert job.poll() is None, job.communicate()
            assert time.monotonic() - started < LAUNCH_TIMEOUT
            time.sleep(0.2)
        workers = {_rank_of(pid): pid for pid in _children(job.pid)}  # torchrun replaced medgan: same pid
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        _, errors = job.communicate(timeout=60)
        assert time.monotonic() - killed < 30  # the elastic agent stops rank 0 at once (not after --timeout)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    # torchrun's summary has one block per failed rank; the root cause is the earliest, and on a loaded machine
    # rank 0's broken-connection error can be stamped before rank 1's kill. Rank 1's block must name the signal.
    blocks = [block for block in re.split(r"\n\[\d+\]:\n", errors) if re.search(r"rank +: 1 ", block)]
    assert len(blocks) == 1 and "SIGKILL" in blocks[0], errors


# ---------------------------------------------------------------------------------------------------------------
# in-process pieces


def test_rank_seeds_keep_rank_zero_and_differ_across_ranks_and_steps():
    assert rank_seed(7, 0) == 7  # a one-process run draws what it always drew
    seeds = {rank_seed(7, r) for r in range(8)} | {rank_seed(7, 1, step=100), rank_seed(7, 0, step=100)}
    seeds |= {rank_seed(7, 0, stream=1), rank_seed(7, 1, stream=1), rank_seed(8, 0, stream=1)}
    assert len(seeds) == 13 and all(0 <= s < 2**63 for s in seeds)


def test_shards_are_disjoint_and_keep_the_minibatch_stddev_groups():
    index = torch.arange(32)
    shards = [World(rank, 2).shard(index, 4) for rank in (0, 1)]
    assert sorted(torch.cat(shards).tolist()) == list(range(32))
    # One process groups images i, i + 8, i + 16, i + 24 of the global batch; each rank's strided groups of its
    # 16 images (j, j + 4, j + 8, j + 12) are exactly such groups.
    global_groups = {tuple(index.reshape(4, -1)[:, i].tolist()) for i in range(8)}
    rank_groups = {tuple(shard.reshape(4, -1)[:, j].tolist()) for shard in shards for j in range(4)}
    assert rank_groups == global_groups
    assert World(1, 3).shard(torch.arange(6), 4).tolist() == [2, 3]  # not divisible by groups: contiguous chunks
    with pytest.raises(ConfigError, match="multiple of the number of processes"):
        World(0, 3).check_batch(32)


def test_nproc_becomes_a_standalone_torchrun_command():
    command = torchrun_command(["train", "--nproc", "4", "--data", "x", "--nproc=4", "--out", "r"], 4)
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4", "-m", "medgan",
                           "train", "--data", "x", "--out", "r"]


class TinyTask(TaskBase):
    """A task's module ownership: a trained G and D (attributes) and an EMA copy that is not trained."""

    def __init__(self):
        from torch import nn

        self.generator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))
        self.discriminator = nn.Linear(4, 1)
        self.ema_module = nn.Linear(4, 4).requires_grad_(False)

    def modules(self):
        return {"generator": self.generator, "discriminator": self.discriminator, "ema": self.ema_module}


def test_compile_wraps_the_trained_modules_only_during_the_step(monkeypatch):
    """train.compile goes through torch.compile (here with the eager backend: inductor takes minutes on CPU)."""
    compiled = []
    real_compile = torch.compile

    def eager_compile(module, **kwargs):
        compiled.append(module)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    task = TinyTask()
    plain = task.generator
    wrappers = TrainingModules(task, World(), torch.device("cpu"), compile=True)
    assert compiled == [task.generator, task.discriminator]  # the EMA copy is not trained
    with wrappers.active():
        assert task.generator is not plain
        task.discriminator(task.generator(torch.ones(2, 4))).sum().backward()
    assert task.generator is plain and plain[0].weight.grad is not None  # the plain module's parameters learn
    assert list(task.generator.state_dict()) == list(plain.state_dict())  # no "_orig_mod." in checkpoints


def test_compile_refuses_penalties_that_need_a_double_backward():
    from medgan.config import from_dict

    with pytest.raises(ConfigError, match="train.compile"):
        from_dict({"train": {"compile": True}, "loss": {"r1_gamma": 1.0}})


def test_a_module_the_task_hides_cannot_be_wrapped():
    from torch import nn

    class Hidden(TinyTask):
        def __init__(self):
            super().__init__()
            self.parts = {"generator": nn.Linear(2, 2)}  # held in a dict, not as an attribute

        def modules(self):
            return self.parts

    with pytest.raises(TypeError, match="trained module 'generator' is not the attribute of the task"):
        TrainingModules(Hidden(), World(), torch.device("cpu"), compile=True)
