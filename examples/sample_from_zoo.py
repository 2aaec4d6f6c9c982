"""Sample synthetic brain MRI slices from the pretrained zoo model, offline, and save them marked as synthetic.

    python3 examples/sample_from_zoo.py --out synthetic-t1          # 64 images as NIfTI + a PNG grid preview
    python3 examples/sample_from_zoo.py --out synthetic-t1 --tiny   # 4 images (what CI runs)
"""

import argparse

import numpy as np

import medgan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="synthetic-t1", help="output folder")
    parser.add_argument("--tiny", action="store_true", help="a few images only")
    args = parser.parse_args()

    for entry in medgan.zoo.entries():  # what ships with the package
        print(f"{entry.name}: {entry.what}")
    model = medgan.load("brain-t1")
    images = model.sample(4 if args.tiny else 64, seed=0)
    print(f"{images.shape} images in {images.unit}, {images.spacing} mm pixels; synthetic: {images.synthetic}")
    print(f"intensity range {np.percentile(images.array, 1):.3g} .. {np.percentile(images.array, 99):.3g}")
    written = images.save(args.out, format="nifti")  # samples.nii.gz (descrip says synthetic) + DATA_CARD.json
    print("wrote", ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
