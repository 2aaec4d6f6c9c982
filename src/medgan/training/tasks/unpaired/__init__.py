"""Unpaired image-to-image translation (CycleGAN): MR to CT, contrast phases, without pairs.

``config`` holds its section (cycle, identity, pool size...), options (--domain-a, --domain-b), recipe (cyclegan)
and demos (mr2ct, phases); ``task`` the training, its directions and what ``medgan evaluate`` runs on its runs;
``pool`` CycleGAN's image pool.
"""

from medgan.training.tasks.unpaired.config import UnpairedOptions
from medgan.training.tasks.unpaired.task import UnpairedTask, unpaired_spec

__all__ = ["UnpairedOptions", "UnpairedTask", "unpaired_spec"]
