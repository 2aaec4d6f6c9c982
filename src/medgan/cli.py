"""The ``medgan`` command line: parse -> typed config -> call the library. No logic lives only here.

User errors (MedganError) print as one line ``error: <file>: <problem>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from medgan.errors import MedganError

EXIT_USER_ERROR = 2


def _add_budget(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help="generator steps to train")
    group.add_argument("--minutes", type=float, help="wall-clock training budget in minutes")


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags as a nested config mapping (applied after the recipe and the YAML file)."""
    values: dict[str, dict[str, Any]] = {"data": {}, "train": {}, "model": {}}
    if args.data is not None:
        values["data"]["source"] = args.data
    if args.resolution is not None:
        values["data"]["resolution"] = args.resolution
    if getattr(args, "labels", None) is not None:
        values["data"]["labels"] = args.labels
    if args.steps is not None:
        values["train"].update(steps=args.steps, minutes=0.0)
    if args.minutes is not None:
        values["train"].update(minutes=args.minutes, steps=10**9)
    if args.batch_size is not None:
        values["train"]["batch_size"] = args.batch_size
    if args.seed is not None:
        values["train"]["seed"] = args.seed
    if getattr(args, "task", None) is not None:
        values["task"] = args.task
    return {key: value for key, value in values.items() if value != {}}


def resolve_train_config(args: argparse.Namespace):
    """recipe (--model) <- YAML (--config) <- CLI flags <- --set overrides, validated."""
    from medgan.config import deep_update, from_dict, load_yaml, parse_overrides, recipe

    base = recipe("dcgan" if args.model == "dcgan" else "medgan")
    values: dict[str, Any] = {}
    if args.config:
        values = deep_update(values, load_yaml(args.config))
    if args.model not in (None, "dcgan", "medgan"):
        values = deep_update(values, {"model": {"name": args.model}})
    values = deep_update(values, _train_overrides(args))
    values = deep_update(values, parse_overrides(args.set or []))
    config = from_dict(values, base=base)
    from medgan.networks import DISCRIMINATORS, GENERATORS  # validate names against the registries
    from medgan.training.tasks import TASKS

    GENERATORS.get(config.model.name)
    DISCRIMINATORS.get(config.model.name)
    TASKS.get(config.task)
    return config


def _print_result(result) -> None:
    print(f"run directory : {result.run_dir}")
    print(f"steps         : {result.steps} in {result.seconds:.1f} s ({result.images_per_s:.1f} images/s)")
    print(f"checkpoint    : {result.checkpoint}")
    print(f"sample grid   : {result.grid}")
    print(f"loss curve    : {result.loss_curve}")
    if result.best_score is not None:
        print(f"best FID      : {result.best_score:.4g} (offline features)")


def command_train(args: argparse.Namespace) -> int:
    from medgan.training.loop import train

    if args.resume:
        budget = {}
        if args.steps is not None:
            budget = {"steps": args.steps, "minutes": 0.0}
        if args.minutes is not None:
            budget = {"minutes": args.minutes, "steps": 10**9}
        result = train(None, args.out, resume=True, progress=not args.quiet, budget=budget)
    else:
        result = train(resolve_train_config(args), args.out, progress=not args.quiet)
    _print_result(result)
    return 0


def command_sample(args: argparse.Namespace) -> int:
    from medgan.export import export
    from medgan.sampling import generate, interpolate, load_generator
    from medgan.visuals import save_grid

    loaded = load_generator(args.run)
    if args.n < 1:
        raise MedganError(f"--n must be at least 1, got {args.n}")
    images, mapping = generate(args.run, args.n, seed=args.seed, class_name=args.class_name, loaded=loaded)
    written = export(images, Path(args.out), args.format, mapping=mapping, spacing=loaded.spacing)
    print(f"wrote {len(images)} synthetic images ({args.format}) to {args.out}")
    if args.interpolate:
        path = Path(args.out) / "interpolation.png"
        save_grid(interpolate(args.run, steps=args.interpolate, rows=4, seed=args.seed, loaded=loaded), path,
                  columns=args.interpolate, scale=2)
        print(f"latent interpolation grid: {path}")
    return 0 if written else 1


def command_info(args: argparse.Namespace) -> int:
    from medgan.config import DataConfig, from_dict
    from medgan.data import describe

    config = from_dict({"data": {"source": args.path, "axis": args.axis, "resolution": args.resolution}}).data
    print(describe(args.path, config))
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from medgan.config import from_dict, recipe
    from medgan.training.loop import train

    out = Path(args.out)
    config = from_dict({"data": {"source": "mni152"}, "train": {"minutes": args.minutes, "steps": 10**9}},
                       base=recipe("medgan"))
    print(f"medgan demo: training the default recipe on the embedded MNI152 brain template for "
          f"{args.minutes:g} minutes (CPU is fine)")
    started = time.monotonic()
    result = train(config, out, progress=not args.quiet)
    _print_result(result)
    print(f"demo finished in {time.monotonic() - started:.0f} s; sample more with: "
          f"medgan sample --run {out} --n 16 --out {out}/exported")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical images.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a GAN on images (a path, or mni152 / ct-phantom)")
    train.add_argument("--data", help="data path or embedded source name (mni152, ct-phantom, ct-lesions)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--config", help="YAML config file (sections: data, model, loss, augment, optim, train)")
    train.add_argument("--model", default=None, help="recipe or architecture: medgan (default), dcgan, resnet")
    train.add_argument("--task", default=None, help="unconditional (default) or conditional")
    train.add_argument("--labels", help="CSV of file,label for conditional training")
    train.add_argument("--resolution", type=int, help="image side: 32, 64, 128 or 256")
    _add_budget(train)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. optim.d_steps=2")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=command_train)

    sample = commands.add_parser("sample", help="write synthetic images from a trained run")
    sample.add_argument("--run", required=True, help="run directory")
    sample.add_argument("--n", type=int, default=16, help="number of images")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--format", default="png", choices=("png", "png16", "nifti", "npy", "dicom"))
    sample.add_argument("--class", dest="class_name", help="class to generate (conditional runs)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--interpolate", type=int, nargs="?", const=8, default=0, metavar="STEPS",
                        help="also write a latent-interpolation grid with STEPS images per row (default 8)")
    sample.set_defaults(handler=command_sample)

    demo = commands.add_parser("demo", help="train the default recipe on the embedded brain MRI template")
    demo.add_argument("--out", default="medgan-demo", help="run directory (default: ./medgan-demo)")
    demo.add_argument("--minutes", type=float, default=8.0, help="training budget (default 8)")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(handler=command_demo)

    info = commands.add_parser("info", help="describe a data path: files, shapes, spacing, intensities, slices")
    info.add_argument("path", help="file, folder or embedded source name")
    info.add_argument("--axis", type=int, default=2)
    info.add_argument("--resolution", type=int, default=64)
    info.set_defaults(handler=command_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medgan`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except MedganError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
