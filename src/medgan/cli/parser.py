"""The argument parser of every ``medgan`` command (handlers live in the sibling modules)."""

from __future__ import annotations

import argparse

from medgan.cli.commands import MAX_INTERPOLATION_STEPS, command_bundle, command_sample, command_translate
from medgan.cli.evaluation import command_audit, command_evaluate, command_segutility, command_utility
from medgan.cli.training import _add_budget, command_demo, command_info, command_prepare, command_train



def build_parser() -> argparse.ArgumentParser:
    from medgan.export import WRITERS
    from medgan.inference import Direction
    from medgan.networks import GENERATORS
    from medgan.networks.translation import TRANSLATORS
    from medgan.training.tasks import DEMOS, RECIPES, TASKS, task_options, tasks_with_option

    directions = [direction.value for direction in Direction]

    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical images.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a GAN on images (a path, or mni152 / ct-phantom)")
    train.add_argument("--data", help="data path or embedded source name (mni152, ct-phantom, ct-lesions)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--config", help="YAML config file (sections: data, model, loss, augment, optim, train, "
                       "privacy, and the task's own section named after it, e.g. unpaired)")
    train.add_argument("--model", default=None, help=f"recipe ({', '.join(RECIPES.names())}) or architecture "
                       f"({', '.join(sorted(set(GENERATORS.names()) | set(TRANSLATORS.names())))}); default: the "
                       "task's recipe")
    train.add_argument("--task", default=None, help=f"{', '.join(TASKS.names())} (default: {TASKS.default}, or the "
                       "task that --model or a task option below selects)")
    train.add_argument("--labels", help="CSV of file,label for conditional training")
    group = train.add_argument_group("task options", "each belongs to the tasks named after it; one marked "
                                     "'selects' also chooses its task when --task is not given")
    for option in task_options():
        owners = " or ".join(tasks_with_option(option.flag))
        selects = " or ".join(tasks_with_option(option.flag, selecting=True))
        group.add_argument(option.flag, dest=option.dest, type=option.type, nargs=option.nargs,
                           metavar=option.metavar,
                           help=f"{option.help} [task {owners}" + (f"; selects {selects}]" if selects else "]"))
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

    demo = commands.add_parser("demo", help="worked projects on embedded data: " + "; ".join(
        f"{name} ({DEMOS.get(name).what})" for name in DEMOS))
    demo.add_argument("name", nargs="?", default="brain", choices=DEMOS.names(), help="which demo (default brain)")
    demo.add_argument("--ct", action="store_true", help="the liver CT demo (same as 'medgan demo liver')")
    demo.add_argument("--out", default=None, help="run directory (default: ./medgan-demo-<name>)")
    demo.add_argument("--minutes", type=float, default=None, help="training budget (default: " + ", ".join(
        f"{DEMOS.get(name).minutes:g} for {name}" for name in DEMOS) + ")")
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
    evaluate.add_argument("--direction", choices=directions, default=None,
                          help="runs that translate both ways (unpaired): the direction evaluated (default a2b)")
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
    utility.add_argument("--select", type=int, default=0, metavar="K",
                         help="generate K times the samples and keep those a classifier trained on the real "
                              "training images assigns to their class (default 0: as generated)")
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
    translate.add_argument("--direction", choices=directions, default=None,
                           help="runs that translate both ways (unpaired): a2b (default, domain A to B) or b2a")
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
    bundle.add_argument("--half", action="store_true", help="store the weights as float16 (half the size; loading "
                        "casts them back)")
    bundle.set_defaults(handler=command_bundle)

    info = commands.add_parser("info", help="describe a data path: files, shapes, spacing, intensities, slices")
    info.add_argument("path", help="file, folder or embedded source name")
    info.add_argument("--axis", type=int, default=2)
    info.add_argument("--resolution", type=int, default=64)
    info.set_defaults(handler=command_info)

    prepare = commands.add_parser("prepare", help="read a cohort once into a cache that training streams from "
                                                  "(medgan train --data CACHE)")
    prepare.add_argument("--data", required=True, help="data path or embedded source name, as for train")
    prepare.add_argument("--out", required=True, help="the cache folder (an interrupted preparation resumes)")
    prepare.add_argument("--resolution", type=int, help="tile side: 32, 64, 128 or 256 (default 64)")
    prepare.add_argument("--labels", help="CSV of file,label[,attributes] (conditional training)")
    prepare.add_argument("--config", help="YAML config file; its data section is used")
    prepare.add_argument("--set", action="append", metavar="data.KEY=VALUE",
                         help="data option, e.g. data.window=brain or data.degrade=lowdose:0.25")
    prepare.add_argument("--workers", type=int, default=0, help="processes reading volumes (default: one per core)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=command_prepare)
    return parser
