"""``medgan invert``, ``train-encoder``, ``explore`` and ``counterfactual``: a noise-to-image run's latent space
(``medgan.inference.inversion``, ``medgan.inference.directions``, ``medgan.evaluation.counterfactual``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgan.cli.commands import CARD_NAME

DEFAULT_STEPS = 300  # medgan.inference.inversion.InversionConfig.steps, without importing torch here
DEFAULT_RESTARTS = 4  # InversionConfig.restarts
DEFAULT_ENCODER_STEPS = 1000  # medgan.inference.encoder.train_encoder's steps
DEFAULT_DIRECTIONS = 5  # medgan.inference.directions.DEFAULT_DIRECTIONS
DEFAULT_TRAVERSAL_STEPS = 7  # medgan.inference.directions.DEFAULT_STEPS
DEFAULT_RANGE = 3.0  # medgan.inference.directions.DEFAULT_RANGE


def add_latent_commands(commands: argparse._SubParsersAction, command: type) -> None:
    """The ``invert``, ``explore`` and ``train-encoder`` subcommands (``command`` makes a subparser: ``parser._command``)."""
    invert = command(commands, "invert", "find the latent (and class) whose generated image reproduces a real "
                                         "image: reconstruction, latent, difference map and SSIM/PSNR")
    invert.add_argument("--run", required=True, help="a 2D noise-to-image run directory, its model bundle or a zoo "
                                                     "model by name (a bundle has no discriminator-feature term)")
    invert.add_argument("--input", required=True, help="one image: PNG/TIFF, NPY, NIfTI, or DICOM file or series "
                                                       "folder, of the run's modality")
    invert.add_argument("--out", required=True, help="output folder")
    invert.add_argument("--class", dest="class_name", help="conditional runs: the image's class (default: every "
                                                           "class is tried and the best kept)")
    invert.add_argument("--slice", type=int, help="volumes: the slice along the run's axis (default: the middle "
                                                  "one of those training would keep)")
    invert.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimizer steps per start (0 with "
                                                                         "--encoder: the encoder's guess alone)")
    invert.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS, help="starts per image (and class)")
    invert.add_argument("--encoder", help="an encoder from medgan train-encoder (NAME.safetensors): the first "
                                          "start is its guess")
    invert.add_argument("--layer-steps", type=int, default=0, metavar="N",
                        help="then refine the reconstruction N steps on the generator's feature maps at a quarter "
                             "of the side (Bau et al. 2019): closer to the input, no longer G(z) for the saved "
                             "latent (default 0: off)")
    invert.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    invert.add_argument("--quiet", action="store_true", help="no progress bar")
    invert.set_defaults(handler=command_invert)

    explore = command(commands, "explore", "picture a run's latent space: its strongest SeFa directions, a latent "
                                           "interpolation and, for conditional runs, every class from the same z")
    explore.add_argument("--run", required=True, help="a 2D noise-to-image run directory, its model bundle or a zoo "
                                                      "model by name")
    explore.add_argument("--out", required=True, help="a new or empty output folder")
    explore.add_argument("--directions", type=int, default=DEFAULT_DIRECTIONS, help="SeFa directions, one row each "
                                                                                    "(1 to the latent size)")
    explore.add_argument("--steps", type=int, default=DEFAULT_TRAVERSAL_STEPS, help="images per row")
    explore.add_argument("--range", dest="span", metavar="RANGE", type=float, default=DEFAULT_RANGE,
                         help="rows go from -RANGE to +RANGE latent standard deviations along each direction")
    explore.add_argument("--seed", type=int, default=0, help="seed of the latents")
    explore.add_argument("--class", dest="class_name", help="conditional runs: the class of the directions and the "
                                                            "interpolation (default: the first class)")
    explore.set_defaults(handler=command_explore)

    counterfactual = command(commands, "counterfactual", "conditional runs: invert each image and regenerate its "
                                                         "latent as another class (counterfactual, change map)")
    counterfactual.add_argument("--run", required=True, help="a 2D class-conditional noise-to-image run directory, "
                                                             "its model bundle or a zoo model by name")
    counterfactual.add_argument("--input", required=True, help="one image (PNG/TIFF, NPY, NIfTI, DICOM file or "
                                                               "series folder) or a folder of images")
    counterfactual.add_argument("--to", required=True, dest="to_class", metavar="CLASS", help="the class to render")
    counterfactual.add_argument("--out", required=True, help="a new or empty output folder")
    counterfactual.add_argument("--judge", help="a TorchScript classifier: [N, 1, R, R] in [-1, 1] -> logits in the "
                                                "run's class order; its class before and after is recorded")
    counterfactual.add_argument("--steer", type=int, default=0, metavar="N",
                                help="with --judge: walk from the found class to --to in N steps and write the first "
                                     "image the judge classifies differently (NAME_minimal)")
    counterfactual.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="inversion steps per start")
    counterfactual.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS, help="starts per image and class")
    counterfactual.add_argument("--seed", type=int, default=0, help="seed of the random starts")
    counterfactual.add_argument("--quiet", action="store_true", help="no progress bar")
    counterfactual.set_defaults(handler=command_counterfactual)

    encoder = command(commands, "train-encoder", "train a latent encoder on a run's own samples (a start for "
                                                 "medgan invert --encoder)")
    encoder.add_argument("--run", required=True, help="a 2D noise-to-image run directory or bundle")
    encoder.add_argument("--out", required=True, help="encoder file NAME.safetensors (NAME.json is written beside it)")
    encoder.add_argument("--steps", type=int, default=DEFAULT_ENCODER_STEPS, help="training steps")
    encoder.add_argument("--batch-size", type=int, default=32, help="generated images per step")
    encoder.add_argument("--seed", type=int, default=0, help="seed of the samples and the initial weights")
    encoder.add_argument("--quiet", action="store_true", help="no progress bar")
    encoder.set_defaults(handler=command_train_encoder)


def command_invert(args: argparse.Namespace) -> int:
    from medgan.evaluation.inversion import invert_file
    from medgan.inference.inversion import InversionConfig
    from medgan.zoo import locate

    args.run = str(locate(args.run))  # a zoo model by name (medgan zoo), else the run or bundle path as given
    config = InversionConfig(steps=args.steps, restarts=args.restarts, seed=args.seed, layer_steps=args.layer_steps)
    record = invert_file(args.run, args.input, args.out, config, class_name=args.class_name,
                         encoder_path=args.encoder, slice_index=args.slice, progress=not args.quiet)
    chosen = f", class {record['class']}" if record["class"] is not None else ""
    print(f"inverted {args.input}{chosen}: SSIM {record['ssim']:.3f}, PSNR {record['psnr_db']:.1f} dB, mean |difference| "
          f"{record['mean_absolute_difference']:.4g} {record['unit']}".rstrip())
    print(f"wrote the reconstruction, latent, difference map, inversion.json and {CARD_NAME} to {args.out} "
          "(derived from the input: as private as it is)")
    return 0


def command_explore(args: argparse.Namespace) -> int:
    from medgan.inference.directions import explore
    from medgan.zoo import locate

    args.run = str(locate(args.run))
    record = explore(args.run, args.out, args.directions, args.steps, args.span, args.seed, args.class_name)
    strongest = record["strongest_direction"]
    print(f"{record['directions']} SeFa directions (eigenvalues {', '.join(f'{v:.3g}' for v in record['eigenvalues'])}"
          f"); direction {strongest} changes the image most: "
          f"{record['mean_absolute_change_per_unit_step'][strongest]:.4g} {record['unit']} per unit step")
    classes = ", classes.png" if record["class"] is not None else ""
    print(f"wrote directions.png, interpolation.png{classes}, directions.npy and explore.json to {args.out}")
    return 0


def command_counterfactual(args: argparse.Namespace) -> int:
    from medgan.evaluation.counterfactual import counterfactual_file
    from medgan.inference.inversion import InversionConfig
    from medgan.zoo import locate

    args.run = str(locate(args.run))
    config = InversionConfig(steps=args.steps, restarts=args.restarts, seed=args.seed)
    record = counterfactual_file(args.run, args.input, args.out, args.to_class, config, args.judge,
                                 progress=not args.quiet, steer_steps=args.steer)
    unit = record["images"][0]["unit"]
    print(f"{len(record['images'])} image(s) as {record['to_class']}: median changed area "
          f"{record['median_changed_area']:.3f}, median L1 change {record['median_l1_change']:.4g} {unit}".rstrip())
    if "judge_class_change_rate" in record:
        print(f"judge: class changed for {record['judge_class_change_rate']:.0%}, predicted {record['to_class']} for "
              f"{record['judge_to_class_rate']:.0%}")
    if "steer" in record:
        walk = record["steer"]
        found = (f": median class weight {walk['median_alpha']:.2f}, median changed area "
                 f"{walk['median_changed_area']:.3f}" if "median_alpha" in walk else "")
        print(f"steered in {walk['steps']} steps: the judge changed its decision for {walk['judge_change_rate']:.0%}"
              f"{found}")
    print(f"wrote the counterfactuals, change maps, previews, counterfactual.json and {CARD_NAME} to {args.out} "
          "(derived from the inputs: as private as they are)")
    return 0


def command_train_encoder(args: argparse.Namespace) -> int:
    from medgan.errors import ConfigError
    from medgan.inference.encoder import encoder_paths, save_encoder, train_encoder
    from medgan.inference.sampling import load_generator
    from medgan.progress import progress_bar
    from medgan.run import check_output_folder
    from medgan.zoo import locate

    args.run = str(locate(args.run))
    weights, _ = encoder_paths(args.out)
    if Path(args.out).suffix not in ("", ".safetensors"):
        raise ConfigError(f"--out names the encoder's weights file NAME.safetensors, got {args.out}")
    check_output_folder(weights.parent, "--out")  # before the training: the folder can be written
    model = load_generator(args.run)
    with progress_bar(total=args.steps, desc="encoder", unit="step", disable=args.quiet) as bar:
        encoder = train_encoder(model, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                progress=bar.update)
    written = save_encoder(encoder, args.out)
    print(f"encoder: final latent MSE {encoder.record['final_latent_mse']:.4f}, image L1 "
          f"{encoder.record['final_image_l1']:.4f} (model units); wrote {', '.join(str(p) for p in written)}")
    return 0
