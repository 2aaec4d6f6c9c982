"""What ``--dims 3`` accepts (``medgan evaluate`` and 3D training), as plain numbers: the CLI's parser, the Python
API, the training reader (``medgan.data.cubes``) and the evaluation reader (``medgan.evaluation.volume_inputs``)
share them. No torch or NumPy here, so ``medgan --help`` stays instant.

* ``VOLUME_SIDE``: every volume is resampled to a cube of this many voxels per side (``--resolution``), between
  ``SIDE_RANGE``: 16 is the smallest cube the 3D SSIM window (11 voxels) fits with a margin; 128 keeps a set of a
  few hundred volumes within a few GiB (8 MiB per volume as float32).
* ``MIN_VOXELS``: a volume needs at least this many voxels along every axis (``medgan.data.slicing.MIN_SIDE``, the
  smallest slice side medgan takes in 2D); fewer is an error, not an upsampling.
* ``MAX_ANISOTROPY``: largest / smallest voxel spacing of a volume. Above 4 (e.g. 1 x 1 x 5 mm), resampling to an
  isotropic cube invents four or more slices between each pair of acquired ones, and the coronal and sagittal
  planes would mostly show interpolation: such volumes are refused, with the limit in the message.
* ``INTENSITY_KEYS``: the data options (``--set data.KEY=VALUE``) that decide how volumes become [-1, 1], with the
  defaults of ``medgan.config.DataConfig`` (CT window ``abdomen``, MR ``percentile`` 0.5-99.5).
"""

from __future__ import annotations

VOLUME_SIDE = 32
SIDE_RANGE = (16, 128)
MIN_VOXELS = 8
MAX_ANISOTROPY = 4.0
INTENSITY_KEYS = ("modality", "normalize", "percentiles", "window", "window_level", "window_width", "nan_policy")
