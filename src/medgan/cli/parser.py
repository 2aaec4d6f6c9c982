"""The argument parser of every ``medgan`` command (handlers live in the sibling modules).

Building it imports no torch: the names it lists come from the tasks' torch-free declarations
(``medgan.training.tasks.declarations``) and the handler modules import the library inside their functions, so
``medgan --help`` and ``medgan COMMAND --help`` answer at once.
"""

from __future__ import annotations

import argparse

from medgan.cli.commands import (MAX_INTERPOLATION_STEPS, command_bundle, command_sample, command_translate,
                                 command_zoo)
from medgan.cli.evaluation import command_audit, command_evaluate, command_segutility, command_utility
from medgan.cli.latent import add_latent_commands
from medgan.cli.training import _add_budget, command_demo, command_info, command_prepare, command_train

# Names the parser offers as choices, kept torch-free; tests/test_cli_surface.py checks each against the registry
# it mirrors (medgan.export.WRITERS, medgan.inference.Direction, medgan.inference.files.OUTPUT_FORMATS).
EXPORT_FORMATS = ("dicom", "nifti", "npy", "png", "png16")
DIRECTIONS = ("a2b", "b2a")
TRANSLATE_FORMATS = ("same", "nifti", "dicom", "png16", "npy")
EMBEDDED_EXAMPLES = "mni152, ct-phantom, ct-lesions"  # a few embedded sources (medgan info lists them all)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default after its text, except where there is nothing to show (no default, a
    flag that is off) or the text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _command(commands: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with ``summary`` and shows defaults."""
    return commands.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    from medgan import __version__
    from medgan.config import DataConfig, TrainConfig
    from medgan.config.volume_rules import INTENSITY_KEYS, MAX_ANISOTROPY, MIN_VOXELS, SIDE_RANGE, VOLUME_SIDE
    from medgan.training.tasks.declarations import (DECLARED, DEMOS, describe_model_names, task_options,
                                                    tasks_with_option)

    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical images.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"medgan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = _command(commands, "train", "train a GAN on images (a path, or mni152 / ct-phantom)")
    train.add_argument("--data", help=f"training images: a file, a folder, a prepared cache (medgan prepare) or an "
                       f"embedded source ({EMBEDDED_EXAMPLES}); required unless --resume (the run's own data), "
                       "--pairs or a --config file with data.source gives them; medgan demo trains on embedded data")
    train.add_argument("--out", required=True, help="run directory (a new one is built as the hidden .NAME.partial "
                       "beside it until its first checkpoint, so a run killed before then leaves no folder)")
    train.add_argument("--config", help="YAML config file (sections: data, model, loss, augment, optim, train, "
                       "privacy, and the task's own section named after it, e.g. unpaired)")
    train.add_argument("--model", default=None, help=f"{describe_model_names()} (default: the task's recipe)")
    train.add_argument("--task", default=None, help=f"{', '.join(DECLARED.names())} (default: {DECLARED.default}, "
                       "or the task that --model or a task option below selects)")
    train.add_argument("--labels", help="CSV of file,label for conditional training")
    group = train.add_argument_group("task options", "each belongs to the tasks named after it; one marked "
                                     "'selects' also chooses its task when --task is not given")
    for option in task_options():
        owners = " or ".join(tasks_with_option(option.flag))
        selects = " or ".join(tasks_with_option(option.flag, selecting=True))
        group.add_argument(option.flag, dest=option.dest, type=option.type, nargs=option.nargs,
                           metavar=option.metavar,
                           help=f"{option.help} [task {owners}" + (f"; selects {selects}]" if selects else "]"))
    train.add_argument("--resolution", type=int, help=f"image side: 32, 64, 128 or 256 (default: "
                       f"{DataConfig().resolution}); with --dims 3 the cube side (32 or 64 on a CPU)")
    train.add_argument("--dims", type=int, choices=(2, 3), help="2: train on slices (default); 3: on whole volumes, "
                       "each resampled to a cube (noise-to-image tasks; data.dims)")
    _add_budget(train, TrainConfig().steps)
    train.add_argument("--batch-size", type=int, help="images per step (default: the recipe's)")
    train.add_argument("--seed", type=int, help=f"seed of every random generator (default: {TrainConfig().seed})")
    train.add_argument("--dp-epsilon", type=float, metavar="E", help="differentially private training (DP-SGD on D, "
                       "the patient as the unit): target epsilon; the noise is solved for the step budget; recipe "
                       "settings DP cannot honour (e.g. model.minibatch_std) are switched off, with a note")
    train.add_argument("--dp-noise", type=float, metavar="SIGMA", help="DP with a fixed noise multiplier instead")
    train.add_argument("--dp-delta", type=float, metavar="D", help="DP delta (default: min(1e-5, 0.1 / patients))")
    train.add_argument("--dp-max-grad-norm", type=float, metavar="C", help="DP per-patient clipping bound (default 1)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint, "
                       "with the run's own config (--steps or --minutes set a new budget; other options may only "
                       "repeat the run's values)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. optim.d_steps=2")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--nproc", type=int, default=1, help="data-parallel processes on this machine (one per "
                       "GPU; on CPU, gloo; 1: one process, no torchrun): N > 1 checks the options, config, data "
                       "paths and --out, then starts torchrun --standalone --nproc-per-node N -m medgan train ...")
    train.add_argument("--timeout", type=float, default=600.0, help="data-parallel runs: seconds a process waits "
                       "for the others in one collective before the job fails")
    train.set_defaults(handler=command_train)

    sample = _command(commands, "sample", "write synthetic images from a trained run")
    sample.add_argument("--run", "--model", dest="run", required=True, help="run directory, model bundle, or a "
                        "pretrained model of the zoo by name (medgan zoo lists them, e.g. brain-t1)")
    sample.add_argument("--n", type=int, default=16, help="number of images")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--format", choices=EXPORT_FORMATS,
                        help="file format (default: png; nifti for 3D runs, one file per volume)")
    sample.add_argument("--class", dest="class_name", help="class to generate (conditional runs)")
    sample.add_argument("--attribute", action="append", metavar="NAME=VALUE",
                        help="continuous attribute value (runs trained with attribute columns in the labels CSV); "
                             "repeatable; attributes not given take their training mean")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    sample.add_argument("--interpolate", type=int, nargs="?", const=8, default=None, metavar="STEPS",
                        help="also write a latent-interpolation grid with STEPS images per row (2 to "
                             f"{MAX_INTERPOLATION_STEPS}; STEPS left out: 8)")
    sample.add_argument("--privacy-filter", action="store_true",
                        help="export gate: replace images that the memorization audit calls near copies of a training "
                             "image (re-reads the run's training data); the count goes to sampling.json")
    sample.add_argument("--privacy-threshold", type=float, default=0.95,
                        help="near-copy SSIM threshold of --privacy-filter, the audit's")
    sample.add_argument("--quiet", action="store_true", help="no progress bars")
    sample.set_defaults(handler=command_sample)

    demo = _command(commands, "demo", "worked projects on embedded data: " + "; ".join(
        f"{name} ({DEMOS.get(name).what})" for name in DEMOS))
    demo.add_argument("name", nargs="?", default="brain", choices=DEMOS.names(), help="which demo")
    demo.add_argument("--ct", action="store_true", help="the liver CT demo (same as 'medgan demo liver')")
    demo.add_argument("--out", default=None, help="run directory (default: ./medgan-demo-<name>)")
    demo.add_argument("--minutes", type=float, default=None, help="training budget (default: " + ", ".join(
        f"{DEMOS.get(name).minutes:g} for {name}" for name in DEMOS) + ")")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=command_demo)

    evaluate = _command(commands, "evaluate", "fidelity, diversity and memorization audit with an HTML report")
    evaluate.add_argument("--real", required=True, help="real images: path, embedded source or run directory "
                          "(--dims 3: a folder or file of volumes)")
    evaluate.add_argument("--fake", help="synthetic images: folder or run directory (or --compare RUN_A RUN_B)")
    evaluate.add_argument("--out", required=True, help="report folder (metrics.json, report.html)")
    evaluate.add_argument("--features", default="offline", help="feature extractor: offline, "
                          "inception[:weights.pth], swav[:weights.pth.tar], radimagenet[:weights.pth] or "
                          "torchscript:model.pt (weights files are local: nothing is downloaded)")
    evaluate.add_argument("--train", help="training images for the memorization audit (default: --real)")
    evaluate.add_argument("--max-images", type=int, help="use at most this many images (--dims 3: volumes) per set")
    evaluate.add_argument("--no-real-images", action="store_true",
                          help="leave every real image out of report.html (the metrics stay), e.g. to share it")
    evaluate.add_argument("--members", help="membership-inference audit (with --non-members, --fake a run): images "
                                            "of the run's training patients")
    evaluate.add_argument("--non-members", help="membership-inference audit: images of patients the run never saw")
    evaluate.add_argument("--direction", choices=DIRECTIONS, default=None,
                          help="runs that translate both ways (unpaired): the direction evaluated (default a2b)")
    evaluate.add_argument("--inputs", nargs="+", metavar="PATH",
                          help="translation runs: held-out input folders (one per input modality, in the run's "
                               "order) matched by file name to the targets in --real (default: the run's own "
                               "embedded sources' test split, with --real naming its target source)")
    evaluate.add_argument("--compare", nargs="+", metavar="RUN",
                          help="instead of --fake: two noise-to-image runs RUN_A RUN_B, each metric with A - B and its "
                               "paired 95%% interval; with --fake a translation run: other translation runs "
                               "evaluated on the same held-out pairs, in the same table")
    evaluate.add_argument("--dims", type=int, choices=(2, 3), default=2,
                          help="2: images (slices); 3: volumes (NIfTI files, DICOM series or NumPy stacks [N, D, H, "
                               "W]) scored by three-plane FID/KID, 3D diversity and 3D memorization")
    evaluate.add_argument("--resolution", type=int, metavar="SIDE",
                          help=f"--dims 3: every volume is resampled to a cube of SIDE voxels, {SIDE_RANGE[0]} to "
                               f"{SIDE_RANGE[1]}, physical proportions kept (default: {VOLUME_SIDE}); volumes need at "
                               f"least {MIN_VOXELS} voxels along every axis and largest / smallest voxel spacing at "
                               f"most {MAX_ANISOTROPY:g}")
    evaluate.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                          help="--dims 3: how volumes map to [-1, 1], e.g. data.window=brain (CT window; default: "
                               "abdomen) or data.normalize=zscore (MR); keys: " + ", ".join(INTENSITY_KEYS))
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(handler=command_evaluate)

    audit = _command(commands, "audit", "membership-inference audit of a run: can an attacker tell its training "
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
    audit.add_argument("--inversion-images", type=int, default=64, metavar="N",
                       help="inversion attack: images per side inverted (a seeded subsample; 0: no inversion attack)")
    audit.add_argument("--inversion-steps", type=int, default=100, help="inversion attack: optimizer steps per start")
    audit.add_argument("--seed", type=int, default=0, help="seed of the samples and the bootstrap")
    audit.add_argument("--quiet", action="store_true", help="no progress bars")
    audit.set_defaults(handler=command_audit)

    utility = _command(commands, "utility", "does synthetic data help a classifier? (real / real+synthetic / "
                                            "synthetic-only, tested on held-out real data)")
    utility.add_argument("--synthetic", required=True, help="a class-conditional run directory")
    utility.add_argument("--real", help="labelled real data (default: the run's own training data)")
    utility.add_argument("--test", help="separate labelled real test data (default: patient-level split of --real)")
    utility.add_argument("--real-labels", metavar="CSV", help="labels CSV of --real (default: the run's data.labels)")
    utility.add_argument("--test-labels", metavar="CSV", help="labels CSV of --test (default: the run's data.labels)")
    utility.add_argument("--out", required=True, help="output folder for metrics.json, utility.html and judge.pt "
                         "(the real arm's first classifier, a --judge for medgan counterfactual)")
    utility.add_argument("--seeds", type=int, default=5, help="classifier runs per arm")
    utility.add_argument("--epochs", type=int, default=30, help="classifier training epochs")
    utility.add_argument("--per-class", type=int, default=0, help="synthetic images per class (default 0: as many "
                                                                  "as the largest real class)")
    utility.add_argument("--seed", type=int, default=0, help="seed of the first classifier run")
    utility.add_argument("--select", type=int, default=0, metavar="K",
                         help="generate K times the samples and keep those a classifier trained on the real "
                              "training images assigns to their class (default 0: as generated)")
    utility.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    utility.add_argument("--quiet", action="store_true", help="no progress bars")
    utility.set_defaults(handler=command_utility)

    segutility = _command(commands, "segutility", "do a mask-to-image run's synthetic pairs help a segmentation "
                                                  "model? (real / real+synthetic / synthetic-only, Dice on held-out "
                                                  "real subjects)")
    segutility.add_argument("--run", required=True, help="a run trained with --task paired --degrade mask")
    segutility.add_argument("--out", required=True, help="output folder for metrics.json and segmentation.md")
    segutility.add_argument("--seeds", type=int, default=5, help="segmentation runs per arm")
    segutility.add_argument("--epochs", type=int, default=None, help="passes over the real training set per run "
                                                                    "(default 80)")
    segutility.add_argument("--test", help="held-out targets (default: the run's own source, split test)")
    segutility.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    segutility.add_argument("--quiet", action="store_true", help="no progress bars")
    segutility.set_defaults(handler=command_segutility)

    translate = _command(commands, "translate", "apply a trained image-to-image run to images (PNG, NIfTI, DICOM, "
                                                "NPY), in physical units")
    translate.add_argument("--run", "--model", dest="run", required=True,
                           help="a paired or unpaired run directory, its model bundle, or a pretrained model of the "
                                "zoo by name (e.g. ct-denoise)")
    translate.add_argument("--input", help="a file, a folder of files (each translated on its own), or a DICOM "
                                           "series folder (the first input domain; with several input modalities a "
                                           "missing one may be left out)")
    translate.add_argument("--direction", choices=DIRECTIONS, default=None,
                           help="runs that translate both ways (unpaired): a2b (default, domain A to B) or b2a")
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--format", default="same", choices=TRANSLATE_FORMATS,
                           help="output kind; same: the input's kind")
    translate.add_argument("--domain", action="append", metavar="NAME=PATH",
                           help="another input domain of the run (e.g. mask=hole.nii.gz); repeatable")
    translate.add_argument("--quiet", action="store_true", help="no progress bars")
    translate.set_defaults(handler=command_translate)

    add_latent_commands(commands, _command)

    bundle = _command(commands, "bundle", "a shareable model bundle of a run: generator weights (safetensors), "
                                          "config, data spec and data card; no discriminator, optimizer state or "
                                          "data locations")
    bundle.add_argument("--run", required=True, help="run directory")
    bundle.add_argument("--out", required=True, help="bundle folder")
    bundle.add_argument("--which", choices=("best", "latest"), default="best", help="checkpoint")
    bundle.add_argument("--half", action="store_true", help="store the weights as float16 (half the size; loading "
                        "casts them back)")
    bundle.set_defaults(handler=command_bundle)

    info = _command(commands, "info", "describe a data path: files, shapes, spacing, intensities, slices; exits 2 "
                                      "when training would refuse it (an image it cannot read)")
    info.add_argument("path", nargs="?", help="file, folder, prepared cache or embedded source name (or --data)")
    info.add_argument("--data", dest="data_path", metavar="PATH", help="the same as PATH, as medgan train takes it")
    info.add_argument("--axis", type=int, default=DataConfig().axis, help="slicing axis of volumes: 0, 1 or 2")
    info.add_argument("--resolution", type=int, default=DataConfig().resolution,
                      help="image side the slices are fitted to")
    info.set_defaults(handler=command_info)

    prepare = _command(commands, "prepare", "read a cohort once into a cache that training streams from (medgan "
                                            "train --data CACHE)")
    prepare.add_argument("--data", required=True, help="data path or embedded source name, as for train")
    prepare.add_argument("--out", required=True, help="the cache folder (an interrupted preparation resumes)")
    prepare.add_argument("--resolution", type=int, help=f"tile side: 32, 64, 128 or 256 (default: "
                         f"{DataConfig().resolution})")
    prepare.add_argument("--labels", help="CSV of file,label[,attributes] (conditional training)")
    prepare.add_argument("--config", help="YAML config file; its data section is used")
    prepare.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                         help="data option, e.g. data.window=brain or data.degrade=lowdose:0.25")
    prepare.add_argument("--workers", type=int, default=0, help="processes reading volumes (default 0: one per "
                                                                "core)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=command_prepare)

    zoo = _command(commands, "zoo", "list the pretrained models shipped with medgan (offline): what each makes, "
                                    "its training data and measured figures")
    zoo.set_defaults(handler=command_zoo)
    return parser
