"""``medgan evaluate``, ``audit``, ``utility`` and ``segutility``: judging synthetic data and trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgan.cli.commands import CARD_NAME, check_range
from medgan.errors import ConfigError


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
    check_range(args.select, 0, 100, "--select")
    config = UtilityConfig(seeds=args.seeds, epochs=args.epochs, seed=args.seed, threads=args.threads)
    result = run_utility_app(args.synthetic, args.real, args.test, args.out, config, per_class=args.per_class,
                             progress=not args.quiet, select=args.select)
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
