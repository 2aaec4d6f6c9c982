"""Translate throughput and peak memory: ``medgan translate`` on a 512 x 512 x 100 CT volume vs non-local means.

What is measured, all in one run so that the ratio is meaningful:

* the run: a pix2pix run trained for a few steps on phantom low-dose pairs (``--data ct-phantom --degrade
  lowdose:0.25 --resolution 256 --set paired.patch=96``; throughput does not depend on training), or ``--run RUN``;
* the volume: phantom patient slices rendered at 512 x 512 over the 400 mm field of view (0.78 mm pixels, 1 mm
  apart, quarter dose), saved as an int16 HU NIfTI like LiTS; ``--upsample`` renders them at 256 and upsamples
  in-plane (cubic), which is faster to make;
* medgan through the library (``translate_path`` in a fresh subprocess, ``--repeats`` times): the model's share
  (``translate_volume``) and end to end (read, translate, write ``.nii.gz``), in slices/s; the subprocess's peak
  RSS by ``os.wait4`` (the lowest of the repeats: allocator noise only adds);
* medgan through the CLI (``medgan translate ... --quiet``) once: wall clock including start-up and model load,
  peak RSS;
* memory bound: the library run again on the first half of the slices; the peak's growth per slice is compared
  with the input + output float32 arrays (2 x 4 bytes per voxel); a model-load-only subprocess gives the fixed part;
* the outputs keep the input's affine and shape;
* non-local means (``medgan.evaluation.paired_baselines.nlm_baseline``: scikit-image's recipe, the same settings
  as paired evaluation) on ``--nlm-slices`` slices spread over the same volume, clipped to the run's CT window as
  in evaluation, in a subprocess of its own.

Usage::

    python benchmarks/bench_translate.py [--run RUN] [--steps 4] [--slices 100] [--size 512] [--nlm-slices 10]
                                         [--upsample | --volume CT.nii] [--repeats 2] [--keep DIR]
"""

from __future__ import annotations

import os

# Idle OpenMP workers must sleep rather than spin, or a busy shared CPU slows every torch op many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

MIB = 2**20


# -----------------------------------------------------------------------------------------------------------
# workers: each measurement runs in a fresh process whose peak RSS is its own


def worker_library(run: str, volume: str, out: str) -> dict:
    """``translate_path`` on one volume; the model's share is timed by wrapping ``translate_volume``."""
    import torch

    import medgan.inference.files as translation
    from medgan.inference import load_model

    started = time.perf_counter()
    model = load_model(run)
    loaded = time.perf_counter()
    spent = {"model_s": 0.0}
    inner = translation.translate_volume

    def timed(*args, **kwargs):
        begin = time.perf_counter()
        result = inner(*args, **kwargs)
        spent["model_s"] += time.perf_counter() - begin
        return result

    translation.translate_volume = timed
    written = translation.translate_path(model, {model.input_domains[0]: volume}, out, "same", progress=False)
    finished = time.perf_counter()
    return {"load_s": loaded - started, "path_s": finished - loaded, "model_s": spent["model_s"],
            "written": [str(path) for path in written], "threads": torch.get_num_threads()}


def worker_load(run: str) -> dict:
    """Imports and the model only: the fixed part of the translation process's memory."""
    import torch

    from medgan.inference import load_model

    load_model(run)
    return {"threads": torch.get_num_threads()}


def worker_nlm(volume: str, count: int, low: str, high: str, axis: int) -> dict:
    """``nlm_baseline`` on ``count`` slices spread over the volume, clipped to the run's CT window ``[low, high]``
    as in evaluation (the window is passed in: NLM needs no model in memory)."""
    from medgan.data.readers import read_volume
    from medgan.evaluation.paired_baselines import BaselineContext, nlm_baseline

    array = read_volume(volume).array
    picks = np.linspace(0, array.shape[axis] - 1, count).round().astype(int)
    slices = np.clip(np.moveaxis(array, axis, 0)[picks], float(low), float(high)).astype(np.float32)
    empty = np.zeros((0, *slices.shape[1:]), np.float32)
    context = BaselineContext(data_range=float(high) - float(low), low=float(low), holes=None,
                              tuning=(empty, empty, empty.astype(bool)))
    started = time.perf_counter()
    nlm_baseline(slices, context)
    return {"nlm_s": time.perf_counter() - started, "slices": int(count), "chosen": context.chosen["nlm"]}


def run_worker(argv: list[str]) -> None:
    name, result_file, *rest = argv
    workers = {"library": worker_library, "load": worker_load, "nlm": worker_nlm}
    arguments = [int(value) if value.isdigit() else value for value in rest]
    Path(result_file).write_text(json.dumps(workers[name](*arguments)))


# Started from a bare interpreter: a child's ru_maxrss includes the RSS of the process it was forked from (Linux
# carries the high-water mark across exec), so children of this process, which holds the rendered volume, would
# all read at least this process's size.
LAUNCHER = """import os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
open(sys.argv[1], "w").write(f"{seconds} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measured(command: list[str], log: Path) -> tuple[float, float]:
    """Runs ``command``; returns its wall clock (s) and its own peak RSS (MiB, ``ru_maxrss`` from ``os.wait4``)."""
    usage = log.with_suffix(".rusage")
    with open(log, "w") as output:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(usage), shutil.which(command[0]) or command[0],
                        *command[1:]], stdout=output, stderr=subprocess.STDOUT, check=True)
    seconds, peak_kib, code = usage.read_text().split()
    if int(code) != 0:
        sys.exit(f"{' '.join(command[:4])} ... failed ({code}):\n{log.read_text()[-3000:]}")
    return float(seconds), int(peak_kib) / 1024  # Linux: KiB


def worker(name: str, folder: Path, *arguments: object) -> tuple[dict, float, float]:
    result = folder / f"{name}-{time.monotonic_ns()}.json"
    seconds, peak = measured([sys.executable, __file__, "--worker", name, str(result), *map(str, arguments)],
                             result.with_suffix(".log"))
    return json.loads(result.read_text()), seconds, peak


# -----------------------------------------------------------------------------------------------------------
# inputs


def medgan_command() -> list[str]:
    script = shutil.which("medgan")
    return [script] if script else [sys.executable, "-m", "medgan.cli"]


def train_run(folder: Path, steps: int) -> Path:
    run = folder / "run"
    command = [*medgan_command(), "train", "--model", "pix2pix", "--task", "paired", "--data", "ct-phantom",
               "--degrade", "lowdose:0.25", "--resolution", "256", "--set", "paired.patch=96", "--steps", str(steps),
               "--out", str(run), "--quiet"]
    seconds, _ = measured(command, folder / "train.log")
    print(f"run: trained pix2pix for {steps} steps on phantom low-dose pairs in {seconds:.0f} s ({run})")
    return run


def make_volume(folder: Path, slices: int, size: int, upsample: bool) -> tuple[Path, str]:
    """A phantom CT volume ``size x size x slices`` in HU, int16 on disk (LiTS style); returns its path and how
    it was made."""
    import nibabel as nib
    from scipy import ndimage

    from medgan.data.phantom.cases import patient_seed, phantom_volume

    seed = patient_seed(7, 0)  # a dataset seed the training set does not use
    render = size // 2 if upsample else size
    volume = phantom_volume(seed, n_slices=slices, slice_mm=1.0, size=render, dose=0.25, n_lesions=3)
    image, affine = volume.image_hu, volume.affine.copy()
    if upsample:
        image = ndimage.zoom(image, (2, 2, 1), order=3)
        affine[:2, :2] /= 2  # same field of view, half the pixel size; keep the field of view centred
        affine[:2, 3] = -(np.diag(affine)[:2] * (size / 2 - 0.5))
    path = folder / "ct_lowdose.nii"
    nib.save(nib.Nifti1Image(np.rint(image).astype(np.int16), affine), path)
    how = (f"phantom patient {volume.patient} rendered at {render} x {render}"
           + (f", upsampled to {size} (cubic)" if upsample else "") + f", {slices} slices 1 mm apart, quarter dose")
    return path, how


def half_volume(path: Path, slices: int, folder: Path) -> Path:
    """The first ``slices`` slices (last array axis) of the volume at ``path``, as a NIfTI in ``folder``."""
    import nibabel as nib

    image = nib.load(path)
    half = folder / "ct_half.nii"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., :slices], image.affine, image.header), half)
    return half


def check_output(written: Path, source: Path) -> str:
    import nibabel as nib

    out, reference = nib.load(written), nib.load(source)
    same_affine = np.allclose(out.affine, reference.affine)
    same_shape = out.shape == reference.shape
    if not (same_affine and same_shape):
        sys.exit(f"{written}: affine kept {same_affine}, shape {out.shape} vs {reference.shape}")
    return f"{written.name}: shape {out.shape} and affine of the input, {out.get_data_dtype()}"


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


# -----------------------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing paired run (default: train one for --steps steps)")
    parser.add_argument("--steps", type=int, default=4, help="training steps of the run made when --run is absent")
    parser.add_argument("--slices", type=int, default=100, help="slices of the CT volume")
    parser.add_argument("--size", type=int, default=512, help="in-plane size of the CT volume")
    parser.add_argument("--nlm-slices", type=int, default=10, help="slices the NLM baseline is timed on")
    parser.add_argument("--volume", type=Path, help="an existing CT NIfTI in HU instead of the phantom volume")
    parser.add_argument("--upsample", action="store_true", help="render the phantom at half size and upsample")
    parser.add_argument("--repeats", type=int, default=2, help="library runs per volume size (fastest, lowest peak)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary folder, removed)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="medgan-bench-translate-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        bench(args, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def bench(args: argparse.Namespace, folder: Path) -> None:
    from medgan.inference.translate import slices_per_batch

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    run = args.run or train_run(folder, args.steps)
    started = time.perf_counter()
    if args.volume:
        import nibabel as nib

        volume, shape = args.volume, nib.load(args.volume).shape
        args.size, args.slices, how = shape[0], shape[-1], f"{volume.name}, {' x '.join(map(str, shape))}"
    else:
        volume, how = make_volume(folder, args.slices, args.size, args.upsample)
    print(f"volume: {how}; made in {time.perf_counter() - started:.0f} s ({volume})")
    slices = args.slices

    _, _, fixed = worker("load", folder, run)
    half = max(1, slices // 2)
    half_path = half_volume(volume, half, folder)
    full_runs, half_peaks = [], []
    for index in range(args.repeats):  # alternated; the peak varies by ~100 MiB from run to run (glibc malloc)
        full_runs.append(worker("library", folder, run, volume, folder / f"out-library-{index}"))
        half_peaks.append(worker("library", folder, run, half_path, folder / f"out-half-{index}")[2])
    library = min((result for result, _, _ in full_runs), key=lambda result: result["model_s"])
    library_peak, half_peak = min(peak for _, _, peak in full_runs), min(half_peaks)
    cli_wall, cli_peak = measured([*medgan_command(), "translate", "--run", str(run), "--input", str(volume),
                                   "--out", str(folder / "out-cli"), "--quiet"], folder / "cli.log")
    from medgan.inference import load_model

    model = load_model(run)
    window = model.spec.domain(model.target).mapping
    nlm, _, nlm_peak = worker("nlm", folder, volume, args.nlm_slices, window.low, window.high, model.config.data.axis)

    print("outputs: " + check_output(Path(library["written"][0]), volume))
    print("         " + check_output(next((folder / "out-cli").iterdir()), volume) + " (CLI)")

    nlm_rate = nlm["slices"] / nlm["nlm_s"]
    rows = [
        ("medgan, model (translate_volume)", slices / library["model_s"], library_peak),
        ("medgan, library end to end", slices / library["path_s"], library_peak),
        ("medgan, CLI wall clock", slices / cli_wall, cli_peak),
        (f"NLM (scikit-image, {nlm['slices']} slices)", nlm_rate, nlm_peak),
    ]
    print(f"\ntranslate {slices} slices of {args.size} x {args.size}; torch threads {library['threads']}, "
          "NLM single-threaded (scikit-image)")
    print(f"{'method':38s} {'slices/s':>9s} {'peak MiB':>9s} {'GAN/NLM':>8s}")
    for name, rate, peak in rows:
        print(f"{name:38s} {rate:9.2f} {peak:9.0f} {rate / nlm_rate:7.2f}x")
    print(f"(library: fastest of {args.repeats} runs, lowest peak; model load {library['load_s']:.1f} s; end to end = read + translate + write .nii.gz; "
          f"NLM median sigma {nlm['chosen']['median_sigma']:.1f} HU)")

    slice_mib = args.size * args.size * 4 / MIB  # one float32 slice
    growth = (library_peak - half_peak) / (slices - half) if slices > half else float("nan")
    print(f"\nmemory: imports + model {fixed:.0f} MiB; peak {half_peak:.0f} MiB at {half} slices, "
          f"{library_peak:.0f} MiB at {slices} slices")
    print(f"        growth {growth:.2f} MiB per slice; input + output float32 arrays are {2 * slice_mib:.2f} "
          f"MiB per slice ({growth / (2 * slice_mib):.1f}x that)")
    print(f"        the {slices}-slice float32 volume is {slices * slice_mib:.0f} MiB; peak above imports + model: "
          f"{library_peak - fixed:.0f} MiB (input + output + one batch of {slices_per_batch(512, 512)} slice(s) through G)")


if __name__ == "__main__":
    main()
