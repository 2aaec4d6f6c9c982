"""Unpaired image-to-image translation (CycleGAN): MR to CT, contrast phases, without pairs.

``config`` holds its section (cycle, identity, pool size...), options (--domain-a, --domain-b), recipe (cyclegan)
and demos (mr2ct, phases); ``task`` the training, its directions and what ``medgan evaluate`` runs on its runs;
``pool`` CycleGAN's image pool.
"""

from medgan.training.tasks.declarations import lazy_attributes

__all__ = ["UnpairedOptions", "UnpairedTask", "unpaired_spec"]
# Imported at first use (the declarations in ``config`` load without torch; see medgan.training.tasks).
__getattr__ = lazy_attributes(__name__, {
    "UnpairedOptions": "config",
    "UnpairedTask": "task",
    "unpaired_spec": "task",
})
