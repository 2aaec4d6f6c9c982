"""Inversion of held-out brain slices (``medgan invert``'s search) against the retrieval baseline, with the
encoder start against random starts, and the inversion membership signal.

Setting: a 2D unconditional run on the ``mni152-cohort`` source (subjects 0-47; trained here with
``--train-minutes`` unless ``--run`` names an existing one). Held-out images: ``--subjects`` subjects from
``medgan.data.cohort.HELD_OUT`` on (never drawn by a training source), sliced with the run's own data config,
``--per-subject`` slices each (seeded). Members: as many training slices, of as many training subjects.

Arms, per held-out image (SSIM and PSNR on the display scale, ``medgan.metrics.image``):

* retrieval: the training image with the highest SSIM to it (exhaustive over the run's training tiles); its PSNR
  is that same image's;
* inversion, random starts: ``--steps`` Adam steps, ``--restarts`` starts;
* inversion, encoder start: the same, the first start being E(x) (``medgan train-encoder``, ``--encoder-steps``);
* encoder alone: G(E(x)), no optimization.

Intervals: 95% percentile bootstrap of the mean over subjects (all slices of a drawn subject kept). "Steps to
SSIM s": the first step at which the mean over images of the best SSIM reached so far is at least s, with s the
random-start arm's final mean SSIM (and 95% of the way from its start to that value).
Membership: the inversion attack's AUC (members = training slices) with its patient-bootstrap interval.

``--setting liver``: a liver lesion run (``--run``, e.g. the liver demo recipe), held-out images = ``--per-class``
lesion ROIs per class of new phantom patients (dataset seed 7, as ``benchmarks/counterfactual.py``), windowed as the
run windows its ROIs; the class is searched; members for the membership signal = as many of the run's training ROIs.

Usage::

    python3 benchmarks/inversion.py --work /tmp/inv-bench [--run /tmp/inv-bench/run] [--train-minutes 10]
    python3 benchmarks/inversion.py --setting liver --run LIVER_RUN --work /tmp/inv-liver [--per-class 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def held_out(config, subjects: int, per_subject: int, first: int, seed: int):
    """(tiles [N, 1, R, R], subject per tile) of cohort subjects ``first`` .. ``first + subjects - 1``."""
    from medgan.data.cohort import mni_cohort
    from medgan.data.datasets import slices_from_volumes

    slices = slices_from_volumes(mni_cohort(subjects, first=first), config)
    rng = np.random.default_rng(seed)
    picked = []
    for subject in sorted(set(slices.subjects)):
        rows = np.flatnonzero(np.asarray(slices.subjects) == subject)
        picked.extend(sorted(rng.choice(rows, size=min(per_subject, len(rows)), replace=False)))
    return slices.images[torch.as_tensor(picked)].float(), [slices.subjects[i] for i in picked]


def retrieval(queries: torch.Tensor, training: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (SSIM, PSNR) of the training image with the highest SSIM to it (exhaustive; SSIM by the
    inversion's separable implementation, equal to ``medgan.metrics.image.ssim`` up to float rounding)."""
    from medgan.inference.inversion import ssim_values as ssim
    from medgan.metrics.image import psnr

    best, best_psnr = np.full(len(queries), -np.inf), np.zeros(len(queries))
    for index, query in enumerate(queries):
        for start in range(0, len(training), 1024):
            block = training[start : start + 1024]
            with torch.no_grad():
                values = ssim(query[None].expand(len(block), -1, -1, -1), block).numpy()
            top = int(values.argmax())
            if values[top] > best[index]:
                best[index] = values[top]
                best_psnr[index] = float(psnr(query[None], block[top : top + 1])[0])
    return best, best_psnr


def subject_interval(values: np.ndarray, subjects: list[str], rounds: int = 2000, seed: int = 0) -> list[float]:
    """[mean, low, high]: the mean and its 95% bootstrap interval, resampling subjects."""
    groups = [np.flatnonzero(np.asarray(subjects) == key) for key in sorted(set(subjects))]
    rng = np.random.default_rng(seed)
    means = [values[np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])].mean()
             for _ in range(rounds)]
    return [float(values.mean()), *map(float, np.percentile(means, [2.5, 97.5]))]


def paired(rows: dict, subjects: list[str]) -> dict:
    """Per-image differences with subject-bootstrap intervals: inversion - retrieval, encoder start - random."""
    names = list(rows)
    retrieval_name, random_name, encoder_name = names[0], names[2], names[3]
    result = {}
    pairs = {"inversion (random starts) - retrieval": (random_name, retrieval_name),
             "inversion (encoder start) - retrieval": (encoder_name, retrieval_name),
             "encoder start - random starts": (encoder_name, random_name)}
    for name in names[4:]:  # layer-wise arms
        pairs[f"{name.removeprefix('inversion + ')} - retrieval"] = (name, retrieval_name)
    for label, (a, b) in pairs.items():
        result[label] = {metric: subject_interval(np.asarray(rows[a][i]) - np.asarray(rows[b][i]), subjects)
                         for i, metric in enumerate(("ssim", "psnr_db"))}
    return result


def steps_to(trace: torch.Tensor, level: float) -> int | None:
    """First step at which the mean over images of the best SSIM so far reaches ``level`` (None: never)."""
    curve = trace.cummax(0).values.mean(1)
    reached = torch.nonzero(curve >= level - 1e-9)
    return int(reached[0]) if len(reached) else None


def arm(model, tiles, config, features, starts=None):
    """(per-image SSIM, PSNR, trace, seconds) of one inversion arm; with ``config.layer_steps`` a pair of them:
    the latent's own images G(z) (the arm without refinement: the same search) and the refined ones."""
    from medgan.inference.inversion import invert
    from medgan.metrics.image import psnr, ssim

    began = time.perf_counter()
    result = invert(model, tiles, config, None, features, starts)
    seconds = time.perf_counter() - began
    refined = (ssim(result.images, tiles).numpy(), psnr(result.images, tiles).numpy(), result.ssim_trace, seconds)
    if not config.layer_steps:
        return refined
    plain = model.forward(result.latents, result.labels, model.attribute_vector(None))
    return (ssim(plain, tiles).numpy(), psnr(plain, tiles).numpy(), result.ssim_trace, None), refined


def train_run(run: Path, minutes: float) -> None:
    command = [sys.executable, "-m", "medgan", "train", "--data", "mni152-cohort", "--out", str(run), "--minutes",
               str(minutes), "--resolution", "64", "--quiet"]
    print("training:", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/inv-bench")
    parser.add_argument("--run", help="an existing 2D run on mni152-cohort (default: WORK/run, trained if missing)")
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--subjects", type=int, default=8, help="held-out subjects")
    parser.add_argument("--per-subject", type=int, default=2, help="slices per subject")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--encoder-steps", type=int, default=400)
    parser.add_argument("--encoder", help="an encoder file from an earlier run of this script (WORK/encoder."
                                          "safetensors) instead of training one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--setting", choices=("brain", "liver"), default="brain",
                        help="brain: held-out mni152-cohort slices (default); liver: lesion ROIs of new phantom "
                             "patients (dataset seed 7) for a liver lesion run given with --run")
    parser.add_argument("--per-class", type=int, default=8, help="liver: new-patient ROIs per class")
    parser.add_argument("--layer-steps", type=int, default=0,
                        help="also refine each inversion layer-wise for N steps (medgan invert --layer-steps)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from medgan.data.cohort import HELD_OUT
    from medgan.data.pipeline import load_slices
    from medgan.evaluation.inversion import discriminator_features
    from medgan.evaluation.membership import attack_summary, inversion_scores
    from medgan.inference.encoder import load_encoder, save_encoder, train_encoder
    from medgan.inference.inversion import InversionConfig
    from medgan.inference.sampling import load_generator

    work = Path(args.work)
    run = Path(args.run) if args.run else work / "run"
    began = time.perf_counter()
    if not run.exists():
        train_run(run, args.train_minutes)
    model = load_generator(run)
    data = model.config.data
    training = load_slices(data, progress=False, skip_blank=True)
    if args.setting == "liver":
        from liver_experiments import new_patient_rois  # same folder

        rois = new_patient_rois(data, per_class=args.per_class, seed=7)
        queries, subjects = rois.images.float(), list(rois.subjects)
        picked = torch.randperm(len(training), generator=torch.Generator().manual_seed(1))[: len(queries)]
        members, member_subjects = training.images[picked].float(), [training.subjects[i] for i in picked]
    else:
        queries, subjects = held_out(data, args.subjects, args.per_subject, HELD_OUT, seed=0)
        members, member_subjects = held_out(data, args.subjects, args.per_subject, 0, seed=1)  # training subjects
    features, _ = discriminator_features(run)
    results: dict = {"setting": args.setting, "run": str(run), "held_out_images": len(queries), "held_out_subjects": len(set(subjects)),
                     "training_images": len(training), "steps": args.steps, "restarts": args.restarts}

    timer = time.perf_counter()
    print(f"{len(queries)} held-out slices, {len(training)} training slices", flush=True)
    retrieved = retrieval(queries, training.images.float())
    results["retrieval_seconds"] = time.perf_counter() - timer
    timer = time.perf_counter()
    if args.encoder:
        encoder = load_encoder(args.encoder, model)
    else:
        encoder = train_encoder(model, steps=args.encoder_steps, batch_size=32, seed=0)
        save_encoder(encoder, work / "encoder.safetensors")
    results["encoder_seconds"] = time.perf_counter() - timer
    results["encoder"] = encoder.record
    print(f"retrieval {results['retrieval_seconds']:.0f} s, encoder {results['encoder_seconds']:.0f} s", flush=True)
    starts = encoder.encode(queries)
    config = InversionConfig(steps=args.steps, restarts=args.restarts, layer_steps=args.layer_steps)
    random_arm = arm(model, queries, config, features)
    encoder_arm = arm(model, queries, config, features, starts)
    alone = arm(model, queries, InversionConfig(steps=0, restarts=1), features, starts)
    layered = {}
    if args.layer_steps:  # the refined arms last, so that the first four rows keep their places
        (random_arm, layered["inversion + layer-wise, random starts"]) = random_arm
        (encoder_arm, layered["inversion + layer-wise, encoder start"]) = encoder_arm
        results["layer_steps"] = args.layer_steps

    final = float(random_arm[2].cummax(0).values.mean(1)[-1])
    first = float(random_arm[2][0].mean())
    levels = {"final": final, "95% of the way": first + 0.95 * (final - first)}
    rows = {"retrieval (nearest training image by SSIM)": (retrieved[0], retrieved[1], None, None),
            "encoder alone, G(E(x))": alone, "inversion, random starts": random_arm,
            "inversion, encoder start": encoder_arm, **layered}
    results["arms"] = {}
    for name, (ssim_values, psnr_values, trace, seconds) in rows.items():
        entry = {"ssim": subject_interval(ssim_values, subjects), "psnr_db": subject_interval(psnr_values, subjects),
                 "seconds": seconds}
        if trace is not None and trace.shape[0] > 1 and "layer-wise" not in name:
            entry["steps_to"] = {label: steps_to(trace, level) for label, level in levels.items()}
        results["arms"][name] = entry
    results["levels"] = levels
    results["per_image"] = {name: {"ssim": values[0].tolist(), "psnr_db": values[1].tolist()}
                            for name, values in rows.items()}
    results["subjects"] = subjects
    results["paired"] = paired(rows, subjects)

    fast = {"steps": 60, "restarts": 2}
    scores = [inversion_scores(model, images, None, features, **fast) for images in (members, queries)]
    results["membership"] = {"setting": fast, **attack_summary(scores[0], member_subjects, scores[1], subjects)}
    results["total_seconds"] = time.perf_counter() - began
    results["cpu"] = cpu_name()
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


def table(results: dict) -> str:
    def cell(values: list[float], digits: int) -> str:
        return f"{values[0]:.{digits}f} [{values[1]:.{digits}f}, {values[2]:.{digits}f}]"

    levels = results["levels"]
    heading = (f"{results['held_out_images']} held-out slices of {results['held_out_subjects']} subjects; "
               f"{results['training_images']} training slices; {results['steps']} steps x {results['restarts']} starts")
    header = (f"| method | SSIM [95% CI] | PSNR dB [95% CI] | steps to SSIM {levels['95% of the way']:.3f} | "
              f"steps to SSIM {levels['final']:.3f} | seconds |")
    lines = [heading, "", header, "|---|---|---|---|---|---|"]
    for name, entry in results["arms"].items():
        reach = entry.get("steps_to", {})
        steps = [str(reach.get(key, "–")) for key in ("95% of the way", "final")]
        seconds = "–" if entry["seconds"] is None else f"{entry['seconds']:.0f}"
        lines.append(f"| {name} | {cell(entry['ssim'], 3)} | {cell(entry['psnr_db'], 2)} | {steps[0]} | "
                     f"{steps[1]} | {seconds} |")
    member = results["membership"]
    attack = (f"inversion membership attack ({member['setting']['steps']} steps x {member['setting']['restarts']} "
              f"starts): AUC {member['auc']:.3f} [{member['auc_ci_low']:.3f}, {member['auc_ci_high']:.3f}]")
    lines += ["", "| paired difference | SSIM [95% CI] | PSNR dB [95% CI] |", "|---|---|---|"]
    lines += [f"| {name} | {cell(entry['ssim'], 3)} | {cell(entry['psnr_db'], 2)} |"
              for name, entry in results["paired"].items()]
    lines += ["", attack, f"total {results['total_seconds'] / 60:.1f} min on {results['cpu']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
