"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2`` (gloo on CPU): several tiny data-parallel
runs in one launch (a launch costs a torch import per process), each rank writing what it saw to a JSON file.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/distributed_worker.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.data import load_slices
from medgan.training.distributed import World
from medgan.training.loop import train

SMALL = {"generator_channels": 8, "discriminator_channels": 8}
EVERY = {"log_every": 1, "sample_every": 100, "checkpoint_every": 4, "eval_every": 0, "threads": 1}


def gan_config(steps: int):
    """The default recipe (BatchNorm G, spectrally normalized D with minibatch stddev), with lazy R1 every 2nd D
    step (a double backward through DDP) and the EMA on from step 1."""
    return from_dict({"data": {"source": "mni152", "resolution": 32},
                      "model": {**SMALL, "latent_dim": 16}, "loss": {"r1_gamma": 1.0, "r1_interval": 2},
                      "train": {**EVERY, "steps": steps, "batch_size": 16, "ema_start": 1}}, base=recipe("medgan"))


def paired_config(steps: int):
    """pix2pix (instance norm only: no BatchNorm anywhere) in fp32 with no random augmentation, so a 2-process run
    and a 1-process run with the same global batch compute the same gradients."""
    return from_dict({"task": "paired", "data": {"source": "mni152", "resolution": 32, "degrade": "downsample:2",
                                                 "flip": False},
                      "model": {**SMALL, "depth": 3},
                      "train": {**EVERY, "steps": steps, "batch_size": 8, "precision": "fp32"}}, base=recipe("pix2pix"))


def main(out: Path) -> None:
    dist.init_process_group("gloo")  # once for all runs below (train() then leaves the group alone)
    torch.set_num_threads(1)
    rank = dist.get_rank()
    gan_data = load_slices(gan_config(1).data, progress=False)
    paired_data = load_slices(paired_config(1).data, progress=False)
    seen = {}
    # Log means over ranks when a key exists on one rank only (e.g. the mode-seeking ratio of one shard).
    seen["means"] = World(rank, dist.get_world_size()).mean({"a": float(rank), **({"b": 5.0} if rank else {})})
    seen["straight"] = train(gan_config(8), out / "straight", progress=False, data=gan_data).weights_digest
    train(gan_config(4), out / "resumed", progress=False, data=gan_data)
    seen["resumed"] = train(None, out / "resumed", resume=True, progress=False, data=gan_data,
                            budget={"steps": 8}).weights_digest
    seen["paired"] = train(paired_config(3), out / "paired", progress=False, data=paired_data).weights_digest
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "world": dist.get_world_size(),
                                                       "pid": os.getpid(), **seen}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
