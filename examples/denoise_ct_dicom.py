"""Denoise a CT DICOM with the pretrained zoo model and compare HU before and after.

The input is pydicom's small real CT test image (a 128 x 128 slice); point --input at your own DICOM file or
series folder. The output is a new *derived* DICOM series (new UIDs, ImageType DERIVED), not for diagnostic use.

    python3 examples/denoise_ct_dicom.py --out denoised
    python3 examples/denoise_ct_dicom.py --out denoised --tiny
"""

import argparse
from pathlib import Path

import numpy as np
import pydicom.data

import medgan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=pydicom.data.get_testdata_file("CT_small.dcm"),
                        help="a CT DICOM file or series folder (default: pydicom's CT_small.dcm)")
    parser.add_argument("--out", default="denoised", help="output folder")
    parser.add_argument("--tiny", action="store_true", help="accepted for CI; this example is already small")
    args = parser.parse_args()

    model = medgan.load("ct-denoise")
    result = model.translate(args.input)  # HU in, HU out, the input's geometry
    source = model.translate_files(args.input, args.out, format="dicom")  # what `medgan translate` writes
    from medgan.data.readers import read_volume

    before = read_volume(Path(args.input)).array
    inside = (before > -160) & (before < 240)  # the abdomen window the model works in
    print(f"input {before.shape} HU, output {result.shape} {result.unit}; spacing {result.spacing} mm")
    print(f"inside the window: mean {before[inside].mean():.1f} -> {result.array[inside].mean():.1f} HU, "
          f"mean |change| {np.abs(result.array - before)[inside].mean():.1f} HU")
    print("wrote", ", ".join(str(path) for path in source))


if __name__ == "__main__":
    main()
