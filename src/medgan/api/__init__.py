"""The Python API: the CLI's commands as functions, with the CLI's defaults.

    import medgan
    model = medgan.load("brain-t1")             # a zoo model, a run directory or a bundle
    images = model.sample(16, seed=0)           # Images: array [16, 64, 64] in the model's units, spacing in mm
    images.save("synthetic", format="nifti")    # marked synthetic, with DATA_CARD.json
    run = medgan.train("my_t1_folder", "runs/t1", minutes=10)
    metrics = medgan.evaluate("my_t1_folder", run.path, out="report")
    metrics["distribution.fid"], metrics["distribution.fid_interval"]
    medgan.compare("runs/a", "runs/b", real="my_t1_folder")   # A - B per metric with paired 95% intervals

Every function returns arrays in physical units (HU for CT) with their spacing; nothing here changes process
state (threads, environment, RNG of the caller).
"""

from medgan.api.functions import Metrics, Run, compare, evaluate, load, train
from medgan.api.images import Images
from medgan.api.model import Model

__all__ = ["Images", "Metrics", "Model", "Run", "compare", "evaluate", "load", "train"]
