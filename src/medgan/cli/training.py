"""``medgan train`` and ``medgan demo``: flags -> typed config -> the training loop."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Callable

from medgan.errors import ConfigError


def _add_budget(parser: argparse.ArgumentParser, steps: int) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=int, help=f"generator steps to train (default: {steps:,})")
    group.add_argument("--minutes", type=float, help="wall-clock training budget in minutes, instead of --steps")


DP_OPTIONS = {"dp_epsilon": "epsilon", "dp_noise": "noise", "dp_delta": "delta", "dp_max_grad_norm": "max_grad_norm"}


def _task_overrides(args: argparse.Namespace, values: dict[str, Any]) -> dict[str, Any]:
    """The task options given on the command line (``medgan.training.tasks.TaskOption``) as nested config values,
    with the task they select: ``values["task"]`` (--task, the config file or the recipe) when set, else the one
    task whose selecting options were given. Each option must belong to that task, and two options that set one
    key must agree."""
    from medgan.training.tasks.declarations import DECLARED, task_options, tasks_with_option

    given = [(option, getattr(args, option.dest)) for option in task_options()
             if getattr(args, option.dest, None) is not None]
    task = values.get("task")
    if task is None:
        selected = sorted({name for option, _ in given for name in tasks_with_option(option.flag, selecting=True)})
        if len(selected) > 1:
            raise ConfigError(f"these options select different tasks ({', '.join(selected)}); give --task")
        task = selected[0] if selected else None
    overrides: dict[str, Any] = {} if task is None else {"task": task}
    task = task or DECLARED.default
    assigned: dict[str, tuple[str, Any]] = {"data.source": ("--data", args.data)} if args.data is not None else {}
    for option, value in given:
        owners = tasks_with_option(option.flag)
        if task not in owners:
            raise ConfigError(f"{option.flag} is an option of task {' or '.join(owners)}, not of task {task!r}")
        key = option.key if "." in option.key else f"{task}.{option.key}"
        value = list(value) if isinstance(value, (list, tuple)) else value
        if key in assigned and assigned[key][1] != value:
            raise ConfigError(f"{assigned[key][0]} and {option.flag} both set {key}; give one")
        assigned[key] = (option.flag, value)
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = value
    return overrides


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags of the shared sections as a nested config mapping (applied after the recipe and the YAML file)."""
    values: dict[str, dict[str, Any]] = {"data": {}, "train": {}, "model": {}}
    if args.data is not None:
        values["data"]["source"] = args.data
    if args.resolution is not None:
        values["data"]["resolution"] = args.resolution
    if getattr(args, "dims", None) is not None:
        values["data"]["dims"] = args.dims
    if args.labels is not None:
        values["data"]["labels"] = args.labels
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


def train_values(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """The user's config values of ``medgan train`` (YAML (--config) <- CLI flags <- --set overrides, the task
    options included) and the recipe (--model) they go on."""
    from medgan.config import deep_update, parse_overrides
    from medgan.training.tasks import check_user_values, user_values

    given = deep_update(_train_overrides(args), parse_overrides(args.set or []))
    values, recipe, file_values = user_values(args.config, args.model, given)
    values = deep_update(values, _task_overrides(args, values))
    check_user_values(values, file_values, args.model, recipe, args.config)
    _check_dp_flags(args, values)
    return values, recipe


def _check_dp_flags(args: argparse.Namespace, values: dict[str, Any]) -> None:
    """DP options are all or nothing: --dp-delta or --dp-max-grad-norm without a target epsilon or a noise
    multiplier (a flag, or privacy.epsilon / privacy.noise in the config) would train without any privacy."""
    privacy = values.get("privacy") if isinstance(values.get("privacy"), dict) else {}
    if any(_nonzero(privacy.get(key)) for key in ("epsilon", "noise")):
        return
    for flag in ("dp_delta", "dp_max_grad_norm"):
        if getattr(args, flag, None) is not None:
            raise ConfigError(f"--{flag.replace('_', '-')} needs --dp-epsilon or --dp-noise: without one, training "
                              "is not differentially private")


def _nonzero(value: Any) -> bool:
    try:
        return float(value) != 0.0
    except (TypeError, ValueError):
        return value is not None  # a malformed value: the config's own check names it


def resolve_train_config(args: argparse.Namespace, note: Callable[[str], None] | None = None):
    """recipe (--model) <- YAML (--config) <- CLI flags <- --set overrides, resolved and checked by the task
    (``note``: where the task's notes go, e.g. the settings DP switched off; default stderr)."""
    from medgan.training.tasks import resolve_config

    values, recipe = train_values(args)
    return resolve_config(values, recipe, note=note)


def check_data_given(values: dict[str, Any]) -> None:
    """Refuses a new run whose values name no training data: a run must not train on a default data set by
    surprise. The data is given by --data, a task option that sets data.source (--domain-b), --pairs, or the
    --config file / --set (data.source or data.pairs)."""
    data = values.get("data")
    if isinstance(data, dict) and (data.get("source") is not None or data.get("pairs") is not None):
        return
    raise ConfigError("--data is required: give the training images (--data PATH: a file, a folder or a prepared "
                      "cache), an embedded source (--data mni152), or try the worked examples: medgan demo")


def _rank_zero_note(text: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank resolves the config; rank 0 speaks
        print(text, file=sys.stderr)


def command_train(args: argparse.Namespace) -> int:
    from medgan.metrics import training_score
    from medgan.training.loop import train

    check_process_options(args)
    if args.resume:
        check_resume_options(args)
        result = train(None, args.out, resume=True, progress=not args.quiet, budget=resume_budget(args),
                       scorer=training_score, timeout_s=args.timeout)
    else:
        notes: list[str] = []
        config = new_run_config(args, notes.append)
        for line in notes:  # after the config's own errors, before anything is written
            _rank_zero_note(line)
        result = train(config, args.out, progress=not args.quiet, scorer=training_score, timeout_s=args.timeout)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank returns; rank 0 speaks for the run
        print(result.summary())
    return 0


def new_run_config(args: argparse.Namespace, note: Callable[[str], None]):
    """The resolved config of a new run from ``medgan train``'s options, which must name training data."""
    from medgan.training.tasks import resolve_config

    values, recipe = train_values(args)
    config = resolve_config(values, recipe, note=note)
    check_data_given(values)
    return config


def resume_budget(args: argparse.Namespace) -> dict[str, Any]:
    """The budget --steps or --minutes gives a resumed run (empty: the run's own)."""
    if args.steps is not None:
        return {"steps": args.steps, "minutes": 0.0}
    if args.minutes is not None:
        return {"minutes": args.minutes, "steps": 0}
    return {}


def check_process_options(args: argparse.Namespace) -> None:
    """--nproc and --timeout, whatever the run."""
    from medgan.training.distributed import check_timeout

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be 1 or more (1: one process, no torchrun), got {args.nproc}")
    check_timeout(args.timeout, "--timeout")


def check_resume_options(args: argparse.Namespace) -> None:
    """--resume continues the run's own config.yaml: the options that set config values (--set, --config, --data,
    --resolution, ...) are checked as for a new run and may only repeat the run's values (the same command run
    again with --resume); one that would change a value is refused. The budget is --steps or --minutes."""
    from medgan.config import first_difference, from_dict, to_dict
    from medgan.run import RunDir

    values, _ = train_values(argparse.Namespace(**{**vars(args), "steps": None, "minutes": None}))
    run = RunDir(args.out)
    if not values or not run.config_file.is_file():
        return  # nothing to compare (a missing run is the loop's error)
    ours = run.read_config()
    given = from_dict(values, base=ours)
    difference = first_difference(to_dict(given), to_dict(ours))
    if difference is not None:
        key, value, own = difference
        raise ConfigError(f"--resume continues this run's config, where {key} is {own!r}; the options given make it "
                          f"{value!r}. A resume takes --steps or --minutes; start a new --out for other settings",
                          run.config_file)


def launch_train(args: argparse.Namespace, argv: list[str]) -> int:
    """``medgan train --nproc N`` (N > 1): everything that can be checked in this process is checked before
    torchrun starts N processes that would each fail on it (and torchrun add its own traceback): the options, the
    config, the data paths, --out and, on resume, the run's checkpoint. Then torchrun replaces this process."""
    from medgan.training.distributed import check_world, torchrun_command
    from medgan.training.loop import check_start

    check_process_options(args)
    if args.resume:
        check_resume_options(args)
        config = check_start(None, args.out, resume=True, budget=resume_budget(args))
    else:
        config = check_start(new_run_config(args, note=lambda line: None), args.out)  # the ranks print the notes
    check_world(config, args.nproc)
    check_data_paths(config.data)
    command = torchrun_command(argv, args.nproc)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # torchrun replaces this process; its exit status is the job's
    return 0  # not reached


def check_data_paths(data: Any) -> None:
    """The cheap part of reading the training data (a DataConfig): every path it names exists and can be read,
    or is an embedded source name."""
    from pathlib import Path

    from medgan.data.sources import SOURCES
    from medgan.errors import DataError

    named = [data.input, data.pairs, data.labels, *data.domain_a] + ([] if data.pairs else [data.source])
    for value in named:
        if value is None or value in SOURCES:
            continue
        path = Path(value).expanduser()
        if not path.exists():
            raise DataError(f"no such file or folder (embedded sources: {', '.join(SOURCES.names())})", path)
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise DataError("no permission to read it", path)


def command_info(args: argparse.Namespace) -> int:
    from medgan.config import from_dict
    from medgan.data.cache import is_cache, open_cache, read_manifest
    from medgan.data.describe import describe_data, render, unreadable

    path = _info_path(args)
    if is_cache(path):  # a prepared cohort: its manifest, checked as training would open it
        manifest = read_manifest(path)
        data = open_cache(path)
        options = manifest["preprocessing"]
        print(f"prepared cohort (medgan {manifest['medgan']}, {manifest['created']}): {len(manifest['subjects'])} "
              f"subjects, {manifest['tiles']} tiles of {options['resolution']} px, mapping {data.mapping.describe()}, "
              f"domains {', '.join(d['name'] for d in manifest['domains'])}, from {manifest['source_root']} "
              f"({len(manifest['source_files'])} source files unchanged)")
        return 0

    config = from_dict({"data": {"source": path, "axis": args.axis, "resolution": args.resolution}}).data
    facts = describe_data(path, config)
    print(render(facts))  # the per-file reasons, also when nothing could be read
    problem = unreadable(facts)
    if problem is not None:  # training would stop on it: so does info, with exit status 2
        raise problem
    return 0


def _info_path(args: argparse.Namespace) -> str:
    """``medgan info PATH`` or ``medgan info --data PATH`` (as train takes it); one of the two."""
    if args.path is not None and args.data_path is not None and args.path != args.data_path:
        raise ConfigError(f"give the data once: PATH ({args.path}) or --data ({args.data_path})")
    path = args.path if args.path is not None else args.data_path
    if path is None:
        raise ConfigError("give the data to describe: medgan info PATH (or --data PATH, as for medgan train)")
    return path


def command_demo(args: argparse.Namespace) -> int:
    from medgan.demos import run_demo

    run_demo("liver" if args.ct else args.name, args.out, args.minutes, progress=not args.quiet)
    return 0


def command_prepare(args: argparse.Namespace) -> int:
    from medgan.config import deep_update, from_dict, load_yaml, parse_overrides
    from medgan.data.cache import prepare_cache
    from medgan.run import check_output_folder

    values: dict[str, Any] = {}
    if args.config:
        values = {"data": load_yaml(args.config).get("data") or {}}
    overrides = parse_overrides(args.set or [])
    if set(overrides) - {"data"}:
        raise ConfigError(f"--set takes data options here (data.KEY=VALUE), got {', '.join(sorted(overrides))}")
    given = {"source": args.data, "resolution": args.resolution, "labels": args.labels}
    values = deep_update(deep_update(values, overrides), {"data": {k: v for k, v in given.items() if v is not None}})
    if not 0 <= args.workers <= 64:
        raise ConfigError(f"--workers must be between 0 and 64, got {args.workers}")
    check_output_folder(args.out, "--out")
    done = prepare_cache(from_dict(values).data, args.out, workers=args.workers, progress=not args.quiet)
    kept = f" ({done.subjects - done.written} kept from an interrupted preparation)" if done.written < done.subjects else ""
    print(f"prepared {done.path}: {done.subjects} subjects, {done.tiles} tiles, {done.bytes / 2**20:.0f} MiB, "
          f"{done.seconds:.1f} s{kept}; train with: medgan train --data {done.path} --out RUN")
    return 0
