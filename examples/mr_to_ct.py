"""Synthetic CT from T1 + T2 MR with the pretrained unpaired zoo model, on a simulated phantom patient.

The phantom is simulated (documented in the manual); give --t1/--t2 NIfTI files of one patient instead to use
your own (co-registered T1 and T2 of the same shape). The CT comes back in HU with the MR's affine.

    python3 examples/mr_to_ct.py --out synthetic-ct
    python3 examples/mr_to_ct.py --out synthetic-ct --tiny
"""

import argparse

import numpy as np

import medgan


def phantom_patients(patients: int):
    """T1, T2 and the true CT slices [N, 64, 64] of held-out simulated phantom patients (two slices each; the
    model was trained on other patients), and the pixel size."""
    from medgan.data.phantom.modalities import phantom_modalities

    rendered = phantom_modalities("test", size=64, modalities=("t1", "t2", "ct"), patients=patients)
    return rendered.images["t1"], rendered.images["t2"], rendered.images["ct"], rendered.pixel_spacing_mm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--t1", help="T1 NIfTI (default: a simulated phantom patient)")
    parser.add_argument("--t2", help="T2 NIfTI of the same patient and shape")
    parser.add_argument("--out", default="synthetic-ct", help="output folder")
    parser.add_argument("--tiny", action="store_true", help="accepted for CI; this example is already small")
    args = parser.parse_args()

    model = medgan.load("mr2ct")
    t2_domain = model.input_domains[1]
    if args.t1:
        result = model.translate(args.t1, domains={t2_domain: args.t2} if args.t2 else None)
    else:
        t1, t2, ct, spacing = phantom_patients(1 if args.tiny else 16)
        # Slice by slice (2D arrays in the MR's units): each output is HU on the input's pixel grid.
        slices = [model.translate(a, domains={t2_domain: b}, spacing=(spacing, spacing)) for a, b in zip(t1, t2)]
        result = medgan.Images(np.stack([item.array for item in slices], axis=-1), (spacing, spacing, 1.0), "HU",
                               synthetic=False, source=str(model.source))
        body = ct.transpose(1, 2, 0) > -500
        error = np.abs(result.array - ct.transpose(1, 2, 0))[body]
        print(f"body MAE against the phantom's true CT: {error.mean():.0f} HU over {body.sum()} pixels of "
              f"{len(slices)} slices")
    print(f"synthetic CT {result.shape} in {result.unit}, derived (synthetic={result.synthetic})")
    print("wrote", ", ".join(str(path) for path in result.save(args.out, format="nifti")))


if __name__ == "__main__":
    main()
