"""The ``medgan`` command line: parse -> typed config -> call the library. No logic lives only here.

User errors (MedganError) print as one line ``error: <file>: <problem>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import errno
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from medgan.errors import ConfigError, MedganError

EXIT_USER_ERROR = 2
DEMO_NAMES = ("brain", "denoise", "liver", "mr2ct", "phases", "superres")  # medgan.demos.DEMOS, without importing torch here
# Write failures the user's machine causes (a full disk, a quota, a read-only or forbidden folder): printed as one
# line naming the file. Writes go through medgan.utils.atomic_path, so nothing half-written is left behind.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})
MAX_INTERPOLATION_STEPS = 64  # images per row of a latent interpolation grid
CARD_NAME = "DATA_CARD.json"  # medgan.card.CARD_NAME, without importing torch here


def _add_budget(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="generator steps to train")
    group.add_argument("--minutes", type=float, help="wall-clock training budget in minutes")


DP_OPTIONS = {"dp_epsilon": "epsilon", "dp_noise": "noise", "dp_delta": "delta", "dp_max_grad_norm": "max_grad_norm"}


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags as a nested config mapping (applied after the recipe and the YAML file)."""
    values: dict[str, dict[str, Any]] = {"data": {}, "train": {}, "model": {}}
    if args.data is not None:
        values["data"]["source"] = args.data
    if getattr(args, "domain_b", None) is not None:
        if args.data is not None and args.data != args.domain_b:
            raise ConfigError("--data and --domain-b both name domain B; give one")
        values["data"]["source"] = args.domain_b
    if getattr(args, "domain_a", None):
        values["data"]["domain_a"] = list(args.domain_a)
        if getattr(args, "task", None) is None:
            values["task"] = "unpaired"  # domains A and B without --task paired: CycleGAN
    if args.resolution is not None:
        values["data"]["resolution"] = args.resolution
    for flag in ("labels", "input", "pairs", "degrade"):
        if getattr(args, flag, None) is not None:
            values["data"][flag] = getattr(args, flag)
    if args.steps is not None:
        values["train"].update(steps=args.steps, minutes=0.0)
    if args.minutes is not None:
        values["train"].update(minutes=args.minutes, steps=0)
    if args.batch_size is not None:
        values["train"]["batch_size"] = args.batch_size
    if args.seed is not None:
        values["train"]["seed"] = args.seed
    if getattr(args, "task", None) is not None:
        values["task"] = args.task
    for flag, key in DP_OPTIONS.items():
        value = getattr(args, flag, None)
        if value is not None:
            if not (math.isfinite(value) and value > 0):  # privacy.epsilon/noise 0 in a config means "off"
                raise ConfigError(f"--{flag.replace('_', '-')} must be a positive number, got {value:g}")
            values.setdefault("privacy", {})[key] = value
    return {key: value for key, value in values.items() if value != {}}


def resolve_train_config(args: argparse.Namespace):
    """recipe (--model) <- YAML (--config) <- CLI flags <- --set overrides, validated."""
    from medgan.config import RECIPES, deep_update, from_dict, load_yaml, parse_overrides, recipe
    from medgan.training.tasks import TASKS

    values: dict[str, Any] = {}
    if args.config:
        values = deep_update(values, load_yaml(args.config))
    if args.model is not None and args.model not in RECIPES:
        values = deep_update(values, {"model": {"name": args.model}})  # an architecture, not a recipe
    values = deep_update(values, _train_overrides(args))
    values = deep_update(values, parse_overrides(args.set or []))
    # --model names a recipe, or else the task's own recipe is the base (pix2pix for "paired").
    task = values.get("task", "unconditional")
    base = recipe(args.model if args.model in RECIPES else TASKS.get(str(task)).default_recipe)
    config = from_dict(values, base=base)
    from medgan.training.loop import check_names

    check_names(config)
    return config


def command_train(args: argparse.Namespace) -> int:
    from medgan.metrics import training_score
    from medgan.training.loop import train

    if args.resume:
        budget = {}
        if args.steps is not None:
            budget = {"steps": args.steps, "minutes": 0.0}
        if args.minutes is not None:
            budget = {"minutes": args.minutes, "steps": 0}
        result = train(None, args.out, resume=True, progress=not args.quiet, budget=budget, scorer=training_score,
                       timeout_s=args.timeout)
    else:
        result = train(resolve_train_config(args), args.out, progress=not args.quiet, scorer=training_score,
                       timeout_s=args.timeout)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank returns; rank 0 speaks for the run
        print(result.summary())
    return 0


def parse_attributes(items: list[str] | None) -> dict[str, float]:
    """``["age=60", "dose=0.5"]`` -> ``{"age": 60.0, "dose": 0.5}``; a malformed item raises ConfigError."""
    import math

    values: dict[str, float] = {}
    for item in items or []:
        name, _, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not name.strip() or not math.isfinite(value):
            raise ConfigError(f"--attribute expects NAME=NUMBER, got {item!r}")
        values[name.strip()] = value
    return values


def check_range(value: int | None, low: int, high: int, option: str) -> None:
    """Raises ConfigError naming ``option`` unless ``value`` (when given) is in [low, high]."""
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{option} must be between {low:,} and {high:,}, got {value}")


def command_sample(args: argparse.Namespace) -> int:
    from medgan.export import output_folder
    from medgan.inference.noise import MAX_SAMPLES, check_sample_count
    from medgan.run import check_output_folder
    from medgan.card import export_card, filter_state
    from medgan.sampling import generate, interpolate, load_generator, privacy_filter, write_samples

    # Every option is checked before the checkpoint is read and before anything is written.
    check_range(args.n, 1, MAX_SAMPLES, "--n")
    check_range(args.interpolate, 2, MAX_INTERPOLATION_STEPS, "--interpolate")
    if not 0.0 < args.privacy_threshold <= 1.0:
        raise ConfigError(f"--privacy-threshold must be in (0, 1], got {args.privacy_threshold}")
    attributes = parse_attributes(args.attribute)
    check_output_folder(output_folder(args.out, args.format), "--out")
    loaded = load_generator(args.run)
    check_sample_count(args.n, loaded.spec.resolution)
    images, _ = generate(args.run, args.n, seed=args.seed, class_name=args.class_name, loaded=loaded,
                         attributes=attributes)
    gate: dict[str, Any] = {"enabled": False}
    if args.privacy_filter:  # the export gate: near copies of training images are replaced (or dropped)
        images, gate = privacy_filter(images, loaded, seed=args.seed, class_name=args.class_name,
                                      attributes=attributes, threshold=args.privacy_threshold, progress=not args.quiet)
        print(f"privacy filter: {gate['near_copies']} of {gate['checked']} images were near copies of a training "
              f"image (SSIM >= {gate['threshold']:g}); {gate['replaced']} replaced, {gate['dropped']} dropped")
    grid = None
    if args.interpolate:  # computed before anything is written, and written in the same all-or-nothing batch
        grid = interpolate(args.run, steps=args.interpolate, rows=4, seed=args.seed, loaded=loaded)
    card = export_card(args.run, {"command": "medgan sample", "images": len(images), "seed": args.seed,
                                  "format": args.format, "class": args.class_name, "attributes": attributes or None,
                                  "privacy_filter": gate}, filter_state(gate))
    metadata = {"synthetic": True, "images": len(images), "seed": args.seed, "class": args.class_name,
                "privacy_filter": gate}
    written = write_samples(images, loaded, args.out, args.format, interpolation=grid, columns=args.interpolate or 8,
                            metadata=metadata, card=card)
    print(f"wrote {len(images)} synthetic images ({args.format}) and {CARD_NAME} to {args.out}")
    if grid is not None:
        print(f"latent interpolation grid: {output_folder(args.out, args.format) / 'interpolation.png'}")
    return 0 if written else 1


def command_translate(args: argparse.Namespace) -> int:
    from medgan.card import export_card, write_card
    from medgan.inference import Translator, load_model
    from medgan.run import check_output_folder
    from medgan.translation import translate_path

    check_output_folder(args.out, "--out")
    model = load_model(args.run, direction=args.direction)
    if not isinstance(model, Translator):
        raise ConfigError(f"this run (task {model.config.task}) does not translate images; medgan translate needs "
                          "a paired or unpaired run", args.run)
    inputs = {} if args.input is None else {model.input_domains[0]: args.input}
    for item in args.domain or []:
        name, separator, path = item.partition("=")
        if not separator or name not in model.input_domains or name in inputs:
            others = ", ".join(model.input_domains[0 if args.input is None else 1:]) or "none"
            raise ConfigError(f"--domain expects NAME=PATH with NAME one of this run's other inputs ({others}), "
                              f"got {item!r}")
        inputs[name] = path
    if not inputs:
        raise ConfigError(f"give the images to translate: --input PATH (domain {model.input_domains[0]})")
    card = export_card(args.run, {"command": "medgan translate", "format": args.format, "direction": args.direction,
                                  "note": "derived from the input images: as private as they are"})
    written = translate_path(model, inputs, args.out, args.format, progress=not args.quiet)
    write_card(args.out, {**card, "export": {**card["export"], "files": len(written)}})
    print(f"wrote {len(written)} file(s) and {CARD_NAME} to {args.out} (derived images, not for diagnostic use)")
    return 0


def command_bundle(args: argparse.Namespace) -> int:
    from medgan.inference.bundle import write_bundle

    written = write_bundle(args.run, args.out, args.which)
    print(f"wrote model bundle {args.out}: {', '.join(path.name for path in written)} (no discriminator, optimizer "
          "state or data locations)")
    return 0


def command_info(args: argparse.Namespace) -> int:
    from medgan.config import from_dict
    from medgan.data.describe import describe_data, render, unreadable

    config = from_dict({"data": {"source": args.path, "axis": args.axis, "resolution": args.resolution}}).data
    facts = describe_data(args.path, config)
    print(render(facts))  # the per-file reasons, also when nothing could be read
    problem = unreadable(facts)
    if problem is not None:
        raise problem
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from medgan.demos import run_demo

    run_demo("liver" if args.ct else args.name, args.out, args.minutes, progress=not args.quiet)
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    from medgan.evaluation.evaluate import evaluate
    from medgan.evaluation.paired import evaluate_paired_run, format_paired_table, is_paired_run
    from medgan.inference.noise import MAX_SAMPLES
    from medgan.evaluation.translation_eval import (evaluate_translation_run, format_translation_table,
                                                    is_translation_run)
    from medgan.metrics.catalog import METRICS, lookup

    check_range(args.max_images, 1, MAX_SAMPLES, "--max-images")
    if is_translation_run(args.fake):  # modality translation: true pairs, tissues, Dice, cycle, identity baseline
        print(format_translation_table(evaluate_translation_run(
            args.fake, args.real, args.out, args.direction, tuple(args.inputs or ()), tuple(args.compare or ()),
            args.max_images, not args.quiet, args.train, not args.no_real_images, args.features)))
        print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'report.html'}")
        return 0
    for option, given in (("--direction", args.direction), ("--inputs", args.inputs), ("--compare", args.compare)):
        if given:
            raise ConfigError(f"{option} is for modality-translation runs (unpaired, or paired with --domain-a)",
                              args.fake)
    if is_paired_run(args.fake):  # an image-to-image run: against its targets and classic baselines
        print(format_paired_table(evaluate_paired_run(args.fake, args.real, args.out, args.max_images, not args.quiet,
                                                      args.train, not args.no_real_images, args.features)))
        print(f"wrote {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'report.html'} and {CARD_NAME}")
        return 0
    metrics = evaluate(args.real, args.fake, args.out, features=args.features, train=args.train,
                       progress=not args.quiet, max_images=args.max_images, real_images=not args.no_real_images,
                       members=args.members, non_members=args.non_members)
    for info in METRICS:
        value = lookup(metrics, info.key)
        if isinstance(value, (int, float)):
            print(f"{info.label:<40}: {value:<10.4g} ({info.better} is better)")
    print(f"wrote {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'report.html'} and {CARD_NAME}")
    return 0


def command_audit(args: argparse.Namespace) -> int:
    from medgan.evaluation.audit import format_audit, run_audit
    from medgan.inference.noise import MAX_SAMPLES

    check_range(args.samples, 2, MAX_SAMPLES, "--samples")
    check_range(args.bootstrap, 10, 100_000, "--bootstrap")
    result = run_audit(args.run, args.members, args.non_members, args.out, samples=args.samples,
                       features=args.features, seed=args.seed, rounds=args.bootstrap, progress=not args.quiet)
    print(format_audit(result))
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'audit.json'}")
    return 0


def command_utility(args: argparse.Namespace) -> int:
    from medgan.evaluation.utility import UtilityConfig, format_utility, run_utility_app
    from medgan.inference.noise import MAX_SAMPLES

    check_range(args.per_class, 0, MAX_SAMPLES, "--per-class")
    config = UtilityConfig(seeds=args.seeds, epochs=args.epochs, seed=args.seed, threads=args.threads)
    result = run_utility_app(args.synthetic, args.real, args.test, args.out, config, per_class=args.per_class,
                             progress=not args.quiet)
    print(format_utility(result))
    if result["test_seen_by_generator"]:
        print("note: the test patients were split off the GAN's own training data, so the synthetic arms may be "
              "optimistic; pass --test with patients the GAN never saw")
    out = Path(args.out)
    print(f"wrote {out / 'metrics.json'} and {out / 'utility.html'}")
    return 0


def command_segutility(args: argparse.Namespace) -> int:
    from medgan.evaluation.segmentation import SegmentationConfig
    from medgan.evaluation.segmentation_app import format_segmentation, run_segmentation_utility

    result = run_segmentation_utility(args.run, args.out, seeds=args.seeds, epochs=args.epochs,
                                      config=SegmentationConfig(threads=args.threads), test=args.test,
                                      progress=not args.quiet)
    print(format_segmentation(result))
    out = Path(args.out)
    print(f"wrote {out / 'metrics.json'} and {out / 'segmentation.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from medgan.export import WRITERS

    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical images.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a GAN on images (a path, or mni152 / ct-phantom)")
    train.add_argument("--data", help="data path or embedded source name (mni152, ct-phantom, ct-lesions)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--config", help="YAML config file (sections: data, model, loss, augment, optim, train)")
    train.add_argument("--model", default=None, help="recipe (medgan, dcgan, pix2pix) or architecture (resnet, "
                                                     "unet); default: the task's recipe")
    train.add_argument("--task", default=None, help="unconditional (default), conditional, paired or unpaired")
    train.add_argument("--labels", help="CSV of file,label for conditional training")
    train.add_argument("--input", help="paired task: input images matched to --data (the targets) by file name")
    train.add_argument("--pairs", help="paired task: CSV with input,target[,mask] columns")
    train.add_argument("--degrade", help="paired task: derive inputs from the targets: lowdose:FRACTION, "
                                         "downsample:FACTOR, inpaint or mask")
    train.add_argument("--domain-a", nargs="+", metavar="PATH", help="image-to-image: the input modalities (domain "
                       "A; several are stacked as channels, e.g. T1 T2); unpaired unless --task paired")
    train.add_argument("--domain-b", metavar="PATH", help="unpaired task: domain B (the same as --data)")
    train.add_argument("--resolution", type=int, help="image side: 32, 64, 128 or 256")
    _add_budget(train)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--dp-epsilon", type=float, metavar="E", help="differentially private training (DP-SGD on D, "
                       "the patient as the unit): target epsilon; the noise is solved for the step budget")
    train.add_argument("--dp-noise", type=float, metavar="SIGMA", help="DP with a fixed noise multiplier instead")
    train.add_argument("--dp-delta", type=float, metavar="D", help="DP delta (default: min(1e-5, 0.1 / patients))")
    train.add_argument("--dp-max-grad-norm", type=float, metavar="C", help="DP per-patient clipping bound (default 1)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. optim.d_steps=2")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--nproc", type=int, default=1, help="data-parallel processes on this machine (one per "
                       "GPU; on CPU, gloo): starts torchrun --standalone --nproc-per-node N -m medgan train ...")
    train.add_argument("--timeout", type=float, default=600.0, help="data-parallel runs: seconds a process waits "
                       "for the others in one collective before the job fails (default 600)")
    train.set_defaults(handler=command_train)

    sample = commands.add_parser("sample", help="write synthetic images from a trained run")
    sample.add_argument("--run", "--model", dest="run", required=True, help="run directory or model bundle")
    sample.add_argument("--n", type=int, default=16, help="number of images")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--format", default="png", choices=WRITERS.names())
    sample.add_argument("--class", dest="class_name", help="class to generate (conditional runs)")
    sample.add_argument("--attribute", action="append", metavar="NAME=VALUE",
                        help="continuous attribute value (runs trained with attribute columns in the labels CSV); "
                             "repeatable; attributes not given take their training mean")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--interpolate", type=int, nargs="?", const=8, default=None, metavar="STEPS",
                        help="also write a latent-interpolation grid with STEPS images per row (2 to "
                             f"{MAX_INTERPOLATION_STEPS}, default 8)")
    sample.add_argument("--privacy-filter", action="store_true",
                        help="export gate: replace images that the memorization audit calls near copies of a training "
                             "image (re-reads the run's training data); the count goes to sampling.json")
    sample.add_argument("--privacy-threshold", type=float, default=0.95,
                        help="near-copy SSIM threshold of --privacy-filter (default 0.95, the audit's)")
    sample.add_argument("--quiet", action="store_true", help="no progress bars")
    sample.set_defaults(handler=command_sample)

    demo = commands.add_parser("demo", help="worked projects on embedded data: brain MRI synthesis (default), liver "
                                            "lesion CT (liver or --ct), CT denoising (denoise), MRI x4 "
                                            "super-resolution (superres), unpaired MR -> CT (mr2ct) and "
                                            "contrast phases (phases)")
    demo.add_argument("name", nargs="?", default="brain", choices=DEMO_NAMES, help="which demo (default brain)")
    demo.add_argument("--ct", action="store_true", help="the liver CT demo (same as 'medgan demo liver')")
    demo.add_argument("--out", default=None, help="run directory (default: ./medgan-demo-<name>)")
    demo.add_argument("--minutes", type=float, default=None, help="training budget (default: 8 for brain and "
                                                                   "liver, 6.5 for denoise, 7 for superres, 7.5 for "
                                                                   "mr2ct, 6 for phases)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=command_demo)

    evaluate = commands.add_parser("evaluate", help="fidelity, diversity and memorization audit with an HTML report")
    evaluate.add_argument("--real", required=True, help="real images: path, embedded source or run directory")
    evaluate.add_argument("--fake", required=True, help="synthetic images: folder or run directory")
    evaluate.add_argument("--out", required=True, help="report folder (metrics.json, report.html)")
    evaluate.add_argument("--features", default="offline", help="feature extractor: offline (default), "
                          "inception[:weights.pth] or torchscript:model.pt")
    evaluate.add_argument("--train", help="training images for the memorization audit (default: --real)")
    evaluate.add_argument("--max-images", type=int, help="use at most this many images per set")
    evaluate.add_argument("--no-real-images", action="store_true",
                          help="leave every real image out of report.html (the metrics stay), e.g. to share it")
    evaluate.add_argument("--members", help="membership-inference audit (with --non-members, --fake a run): images "
                                            "of the run's training patients")
    evaluate.add_argument("--non-members", help="membership-inference audit: images of patients the run never saw")
    evaluate.add_argument("--direction", choices=("a2b", "b2a"), default=None,
                          help="unpaired runs: the direction evaluated (default a2b)")
    evaluate.add_argument("--inputs", nargs="+", metavar="PATH",
                          help="translation runs: held-out input folders (one per input modality, in the run's "
                               "order) matched by file name to the targets in --real (default: the run's own "
                               "embedded sources' test split, with --real naming its target source)")
    evaluate.add_argument("--compare", nargs="+", metavar="RUN",
                          help="translation runs: other runs evaluated on the same held-out pairs, in the same table")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(handler=command_evaluate)

    audit = commands.add_parser("audit", help="membership-inference audit of a run: can an attacker tell its training "
                                              "patients' images from other patients' images? (AUC, TPR at low FPR)")
    audit.add_argument("--run", required=True, help="a noise-to-image run directory")
    audit.add_argument("--members", required=True, help="images of the run's training patients: path, embedded "
                                                        "source (e.g. ct-lesions) or run directory")
    audit.add_argument("--non-members", required=True, help="images of patients the run never saw (no patient may "
                                                            "be on both sides)")
    audit.add_argument("--out", help="folder for audit.json")
    audit.add_argument("--samples", type=int, default=1000, help="synthetic images for the distance attacks")
    audit.add_argument("--features", default="offline", help="feature extractor of the feature-distance attack")
    audit.add_argument("--bootstrap", type=int, default=1000, help="patient-bootstrap resamples of the AUC interval")
    audit.add_argument("--seed", type=int, default=0)
    audit.add_argument("--quiet", action="store_true")
    audit.set_defaults(handler=command_audit)

    utility = commands.add_parser("utility", help="does synthetic data help a classifier? (real / real+synthetic / "
                                                  "synthetic-only, tested on held-out real data)")
    utility.add_argument("--synthetic", required=True, help="a class-conditional run directory")
    utility.add_argument("--real", help="labelled real data (default: the run's own training data)")
    utility.add_argument("--test", help="separate labelled real test data (default: patient-level split of --real)")
    utility.add_argument("--out", required=True, help="output folder for metrics.json and utility.html")
    utility.add_argument("--seeds", type=int, default=5, help="classifier runs per arm")
    utility.add_argument("--epochs", type=int, default=30)
    utility.add_argument("--per-class", type=int, default=0, help="synthetic images per class (default: as many as "
                                                                  "the largest real class)")
    utility.add_argument("--seed", type=int, default=0)
    utility.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    utility.add_argument("--quiet", action="store_true")
    utility.set_defaults(handler=command_utility)

    segutility = commands.add_parser("segutility", help="do a mask-to-image run's synthetic pairs help a segmentation "
                                                        "model? (real / real+synthetic / synthetic-only, Dice on "
                                                        "held-out real subjects)")
    segutility.add_argument("--run", required=True, help="a run trained with --task paired --degrade mask")
    segutility.add_argument("--out", required=True, help="output folder for metrics.json and segmentation.md")
    segutility.add_argument("--seeds", type=int, default=5, help="segmentation runs per arm")
    segutility.add_argument("--epochs", type=int, default=None, help="passes over the real training set per run "
                                                                    "(default 80)")
    segutility.add_argument("--test", help="held-out targets (default: the run's own source, split test)")
    segutility.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    segutility.add_argument("--quiet", action="store_true")
    segutility.set_defaults(handler=command_segutility)

    translate = commands.add_parser("translate", help="apply a trained image-to-image run to images (PNG, NIfTI, "
                                                      "DICOM), in physical units")
    translate.add_argument("--run", "--model", dest="run", required=True,
                           help="a paired or unpaired run directory, or its model bundle")
    translate.add_argument("--input", help="a file, a folder of files, or a DICOM series folder (the first input "
                                           "domain; with several input modalities a missing one may be left out)")
    translate.add_argument("--direction", choices=("a2b", "b2a"), default=None,
                           help="unpaired runs: a2b (default, domain A to B) or b2a")
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--format", default="same", choices=("same", "nifti", "dicom", "png16", "npy"),
                           help="output kind (default: the input's kind)")
    translate.add_argument("--domain", action="append", metavar="NAME=PATH",
                           help="another input domain of the run (e.g. mask=hole.nii.gz); repeatable")
    translate.add_argument("--quiet", action="store_true")
    translate.set_defaults(handler=command_translate)

    bundle = commands.add_parser("bundle", help="a shareable model bundle of a run: generator weights (safetensors), "
                                                "config, data spec and data card; no discriminator, optimizer state "
                                                "or data locations")
    bundle.add_argument("--run", required=True, help="run directory")
    bundle.add_argument("--out", required=True, help="bundle folder")
    bundle.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint (default: best)")
    bundle.set_defaults(handler=command_bundle)

    info = commands.add_parser("info", help="describe a data path: files, shapes, spacing, intensities, slices")
    info.add_argument("path", help="file, folder or embedded source name")
    info.add_argument("--axis", type=int, default=2)
    info.add_argument("--resolution", type=int, default=64)
    info.set_defaults(handler=command_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medgan`` console script."""
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads of one process
    # steal the cores the others need (5-20x slowdowns measured on 2 cores). Must be set before torch loads,
    # so here, first: this module imports torch only inside the functions below. Only the entry point sets
    # process options; importing medgan (e.g. in a notebook) leaves the environment alone.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        from medgan.training.distributed import torchrun_command

        command = torchrun_command(list(sys.argv[1:] if argv is None else argv), args.nproc)
        os.execv(command[0], command)  # torchrun replaces this process; its exit status is the job's
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except MedganError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise  # any other OS error is a bug until a reader or writer turns it into a MedganError
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{os.strerror(error.errno).lower()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
