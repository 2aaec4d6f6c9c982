"""``medgan evaluate``, ``audit``, ``utility`` and ``segutility``: judging synthetic data and trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgan.cli.commands import CARD_NAME, check_range
from medgan.errors import ConfigError


def command_evaluate(args: argparse.Namespace) -> int:
    from medgan.inference.noise import MAX_SAMPLES
    from medgan.run import RunDir
    from medgan.training.tasks import TASKS, EvaluationRequest

    check_range(args.max_images, 1, MAX_SAMPLES, "--max-images")
    if args.dims == 3:
        return command_evaluate_volumes(args)
    if args.resolution is not None or args.set:
        raise ConfigError("--resolution and --set are for --dims 3: 2D images are scored at the synthetic images' "
                          "resolution, with the data config of the run that made them (or the defaults)")
    if args.fake is None:
        return command_compare(args)
    if args.compare and not _translation_run(args.fake):
        raise ConfigError("--compare and --fake are alternatives: --compare RUN_A RUN_B scores two noise-to-image "
                          "runs against --real (without --fake); --fake with --compare is for translation runs",
                          args.fake)
    request = EvaluationRequest(out=Path(args.out), real=args.real, features=args.features, train=args.train,
                                max_images=args.max_images, real_images=not args.no_real_images,
                                members=args.members, non_members=args.non_members, direction=args.direction,
                                inputs=tuple(args.inputs or ()), compare=tuple(args.compare or ()),
                                progress=not args.quiet)
    if RunDir.is_run(args.fake):  # a trained run: its task says what evaluating it means
        task = TASKS.get(RunDir(args.fake).read_config().task)
        if args.direction is not None and not task.capabilities.directions:
            raise ConfigError(f"--direction is for runs that translate both ways; task {task.name!r} translates one "
                              "way", args.fake)
        print(task.evaluate(args.fake, request))
        return 0
    from medgan.evaluation.evaluate import evaluate, format_metrics

    request.refuse(("--direction", "--inputs", "--compare"), "is for modality-translation runs (unpaired, or paired "
                   "with --domain-a)", args.fake)
    metrics = evaluate(args.real, args.fake, args.out, features=args.features, train=args.train,
                       progress=not args.quiet, max_images=args.max_images, real_images=not args.no_real_images,
                       members=args.members, non_members=args.non_members)
    out = Path(args.out)
    print(format_metrics(metrics, f"wrote {out / 'metrics.json'}, {out / 'report.html'} and {CARD_NAME}"))
    return 0


def command_evaluate_volumes(args: argparse.Namespace) -> int:
    """``medgan evaluate --dims 3 --real VOLUMES --fake VOLUMES --out DIR`` (``medgan.evaluation.volumes``)."""
    from medgan.config import parse_overrides
    from medgan.config.volume_rules import VOLUME_SIDE
    from medgan.evaluation.volumes import evaluate_volumes, format_volume_metrics, intensity_config

    for option, given in (("--compare", args.compare), ("--members", args.members),
                          ("--non-members", args.non_members), ("--direction", args.direction),
                          ("--inputs", args.inputs)):
        if given is not None:
            raise ConfigError(f"{option} is not available with --dims 3: it is for 2D runs")
    if args.fake is None:
        raise ConfigError("--dims 3 needs --fake: synthetic volumes (a folder of NIfTI files, a DICOM series or a "
                          "NumPy stack [N, D, H, W])")
    config = intensity_config(parse_overrides(args.set or []))
    metrics = evaluate_volumes(args.real, args.fake, args.out, features=args.features, train=args.train,
                               resolution=VOLUME_SIDE if args.resolution is None else args.resolution,
                               data_config=config, progress=not args.quiet, max_volumes=args.max_images,
                               real_images=not args.no_real_images)
    out = Path(args.out)
    print(format_volume_metrics(metrics, f"wrote {out / 'metrics.json'}, {out / 'report.html'}, {CARD_NAME} and "
                                         f"the figures in {out / 'figures'}"))
    return 0


def _translation_run(path: str) -> bool:
    """True for a run directory whose task translates images (``--fake RUN --compare OTHER...`` applies to it)."""
    from medgan.inference.noise import KIND
    from medgan.run import RunDir
    from medgan.training.tasks import TASKS

    return RunDir.is_run(path) and TASKS.get(RunDir(path).read_config().task or TASKS.default).inference_kind != KIND


def command_compare(args: argparse.Namespace) -> int:
    """``medgan evaluate --compare RUN_A RUN_B --real REAL --out DIR`` (``medgan.evaluation.compare``)."""
    if not args.compare:
        raise ConfigError("give --fake (synthetic images or a run directory) or --compare RUN_A RUN_B")
    if len(args.compare) != 2:
        raise ConfigError(f"--compare takes two runs, RUN_A RUN_B; got {len(args.compare)}")
    for option, given in (("--train", args.train), ("--members", args.members), ("--non-members", args.non_members),
                          ("--direction", args.direction), ("--inputs", args.inputs)):
        if given is not None:
            raise ConfigError(f"{option} is for --fake; --compare RUN_A RUN_B scores the headline metrics only")
    from medgan.evaluation.compare import compare_runs, format_comparison

    metrics = compare_runs(args.compare[0], args.compare[1], args.real, args.out, features=args.features,
                           max_images=args.max_images, progress=not args.quiet, real_images=not args.no_real_images)
    out = Path(args.out)
    print(format_comparison(metrics, f"wrote {out / 'metrics.json'} and {out / 'report.html'}"))
    return 0


def command_audit(args: argparse.Namespace) -> int:
    from medgan.evaluation.audit import format_audit, run_audit
    from medgan.inference.noise import MAX_SAMPLES

    check_range(args.samples, 2, MAX_SAMPLES, "--samples")
    check_range(args.bootstrap, 10, 100_000, "--bootstrap")
    check_range(args.inversion_images, 0, 100_000, "--inversion-images")
    check_range(args.inversion_steps, 0, 100_000, "--inversion-steps")
    result = run_audit(args.run, args.members, args.non_members, args.out, samples=args.samples,
                       features=args.features, seed=args.seed, rounds=args.bootstrap, progress=not args.quiet,
                       inversion_images=args.inversion_images, inversion_steps=args.inversion_steps)
    print(format_audit(result))
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'audit.json'}")
    return 0


def command_utility(args: argparse.Namespace) -> int:
    from medgan.evaluation.utility import UtilityConfig, format_utility, run_utility_app
    from medgan.inference.noise import MAX_SAMPLES
    from medgan.run import RunDir, check_output_folder
    from medgan.training.tasks import TASKS

    check_range(args.per_class, 0, MAX_SAMPLES, "--per-class")
    check_range(args.select, 0, 100, "--select")
    config = UtilityConfig(seeds=args.seeds, epochs=args.epochs, seed=args.seed, threads=args.threads)
    check_output_folder(Path(args.out), "--out")
    config.validate()
    if RunDir.is_run(args.synthetic):  # a bundle has no task: its generator's classes are checked when loaded
        task = TASKS.get(RunDir(args.synthetic).read_config().task)
        if not task.capabilities.conditional:
            raise ConfigError(f"medgan utility needs a class-conditional run; task {task.name!r} does not generate "
                              "by class (train with --task conditional)", args.synthetic)
    for option, labels, data in (("--real-labels", args.real_labels, args.real),
                                 ("--test-labels", args.test_labels, args.test)):
        if labels and not data:
            raise ConfigError(f"{option} labels the data of {option.removesuffix('-labels')}, which is not given")
    result = run_utility_app(args.synthetic, args.real, args.test, args.out, config, per_class=args.per_class,
                             progress=not args.quiet, select=args.select, real_labels=args.real_labels,
                             test_labels=args.test_labels)
    print(format_utility(result))
    if "selection" in result:
        selection = result["selection"]
        print(f"selection: a classifier trained on the real training images accepted {selection['acceptance']:.0%} "
              f"of {sum(selection['generated'])} samples; kept per class: "
              + ", ".join(f"{n} {k}" for n, k in zip(selection["class_names"], selection["kept"])))
    if result["test_seen_by_generator"]:
        print("note: the test patients were split off the GAN's own training data, so the synthetic arms may be "
              "optimistic; pass --test with patients the GAN never saw")
    out = Path(args.out)
    print(f"wrote {out / 'metrics.json'}, {out / 'utility.html'} and {out / 'judge.pt'} (the real arm's first "
          f"classifier, balanced accuracy {result['judge']['balanced_accuracy']:.3f}: a --judge for medgan "
          "counterfactual)")
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
