"""``medgan train`` and ``medgan demo``: flags -> typed config -> the training loop."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from medgan.errors import ConfigError


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
