"""``medgan sample``, ``translate`` and ``bundle``: a trained run (or bundle) -> files."""

from __future__ import annotations

import argparse
from typing import Any

from medgan.errors import ConfigError, DataError

MAX_INTERPOLATION_STEPS = 64  # images per row of a latent interpolation grid
CARD_NAME = "DATA_CARD.json"  # medgan.card.CARD_NAME, without importing torch here


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
    from medgan.inference.sampling import (FILTER_ROUNDS, generate, interpolate, load_generator, privacy_filter,
                                           write_samples)

    from medgan.zoo import locate

    args.run = str(locate(args.run))  # a zoo model by name (medgan zoo), else the run or bundle path as given
    # Every option is checked before the checkpoint is read and before anything is written.
    check_range(args.n, 1, MAX_SAMPLES, "--n")
    check_range(args.interpolate, 2, MAX_INTERPOLATION_STEPS, "--interpolate")
    if not 0.0 < args.privacy_threshold <= 1.0:
        raise ConfigError(f"--privacy-threshold must be in (0, 1], got {args.privacy_threshold}")
    attributes = parse_attributes(args.attribute)
    if args.format is not None:
        check_output_folder(output_folder(args.out, args.format), "--out")
    loaded = load_generator(args.run)
    volumes = loaded.spec.dims == 3
    args.format = args.format or ("nifti" if volumes else "png")
    check_output_folder(output_folder(args.out, args.format), "--out")
    check_sample_count(args.n, loaded.spec.resolution, dims=loaded.spec.dims)
    if volumes and args.interpolate:
        raise ConfigError("--interpolate draws a grid of 2D images; this run makes volumes", args.run)
    images, _ = generate(args.run, args.n, seed=args.seed, class_name=args.class_name, loaded=loaded,
                         attributes=attributes)
    gate: dict[str, Any] = {"enabled": False}
    if args.privacy_filter:  # the export gate: near copies of training images are replaced (or dropped)
        images, gate = privacy_filter(images, loaded, seed=args.seed, class_name=args.class_name,
                                      attributes=attributes, threshold=args.privacy_threshold, progress=not args.quiet)
        unit = "volume" if volumes else "image"
        print(f"privacy filter: {gate['near_copies']} of {gate['checked']} {unit}s were near copies of a training "
              f"{unit} (SSIM >= {gate['threshold']:g}); {gate['replaced']} replaced, {gate['dropped']} dropped")
        if not len(images):
            raise DataError(f"every sampled {unit} stayed a near copy of a training {unit} after "
                            f"{FILTER_ROUNDS} redraws at --privacy-threshold {gate['threshold']:g}: nothing to write",
                            args.run)
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
    what = "volumes" if volumes else "images"
    print(f"wrote {len(images)} synthetic {what} ({args.format}) and {CARD_NAME} to {args.out}")
    if grid is not None:
        print(f"latent interpolation grid: {output_folder(args.out, args.format) / 'interpolation.png'}")
    return 0 if written else 1


def command_translate(args: argparse.Namespace) -> int:
    from medgan.card import export_card, write_card
    from medgan.inference import Translator, load_model
    from medgan.run import check_output_folder
    from medgan.inference.files import translate_path

    from medgan.zoo import locate

    args.run = str(locate(args.run))  # a zoo model by name (medgan zoo), else the run or bundle path as given
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

    written = write_bundle(args.run, args.out, args.which, half=args.half)
    print(f"wrote model bundle {args.out}: {', '.join(path.name for path in written)} (no discriminator, optimizer "
          "state or data locations)")
    return 0


def command_zoo(args: argparse.Namespace) -> int:
    from medgan.zoo import describe

    print(describe())
    return 0
