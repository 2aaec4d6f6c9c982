"""Writes the manual's generated pages at build time (the mkdocs-gen-files plugin runs this script).

* ``reference/cli.md``: every ``medgan`` subcommand of ``medgan.cli.parser.build_parser()``, each option with
  its flags, default and help text, read from argparse itself;
* ``reference/config.md``: every config key, shared sections (``medgan.config.sections.RunConfig``) and each
  registered task's own section (``TASKS.get(name).Options``), with type, default and meaning; the meaning is the
  comment written beside (or above) the field in its source file, read with ``tokenize``;
  plus what each registered recipe and demo sets differently;
* ``reference/configs.md``: every ``configs/*.yaml`` (and ``examples/*.py``) with its first comment line;
* ``changelog.md``: ``CHANGELOG.md`` (links into ``docs/`` rewritten, other repository links shown as paths).

Nothing here is written by hand, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import inspect
import io
import re
import sys
import tokenize
from pathlib import Path
from typing import Any, Iterator

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # the checkout's medgan, installed or not

# ----------------------------------------------------------------------------------------------------------------
# Markdown helpers


def escape(text: str) -> str:
    """``text`` safe for a Markdown table cell: emphasis, HTML and link characters escaped outside code spans."""
    parts = re.split(r"(`+[^`]*`+)", text.replace("\n", " "))
    out = []
    for index, part in enumerate(parts):
        if index % 2:  # a code span, as code (see ``code`` for pipes)
            out.append(code(part.strip("`").strip()))
        else:
            out.append(re.sub(r"([\\*_\[\]<>|])", r"\\\1", part))
    return "".join(out)


def code(value: Any) -> str:
    """``value`` as inline code that is safe in a table cell.

    A pipe ends a table cell even inside a code span, and a backslash-escaped one keeps its backslash there, so
    code holding a pipe (or a backtick) is written as an HTML ``<code>`` element with the pipe as an entity.
    """
    text = str(value)
    if "|" in text or "`" in text:
        return "<code>" + html.escape(text).replace("|", "&#124;").replace("`", "&#96;") + "</code>"
    return f"`{text}`"


# ----------------------------------------------------------------------------------------------------------------
# CLI reference


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, subparser)`` for every subcommand, in the order the parser declares them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield name, helps.get(name, ""), subparser


def option_default(action: argparse.Action) -> str:
    """The default as a user sees it."""
    if action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off" if action.default is False else "on"
    if isinstance(action, argparse._AppendAction):
        return "none (repeatable)"
    if action.default is None or action.default == argparse.SUPPRESS:
        return "none"
    return code(action.default)


def option_flags(action: argparse.Action) -> str:
    """Flags (or the positional name) with the value placeholder."""
    if not action.option_strings:
        return code(action.metavar or action.dest)
    if action.nargs == 0:
        return ", ".join(code(flag) for flag in action.option_strings)
    metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                 else action.dest.upper())
    if action.nargs in ("+", "*"):
        metavar = f"{metavar} [{metavar} ...]"
    elif action.nargs == "?":
        metavar = f"[{metavar}]"
    return ", ".join(code(f"{flag} {metavar}") for flag in action.option_strings)


def option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text with argparse's ``%(default)s`` style fields filled in, plus the choices."""
    text = action.help or ""
    try:
        text = parser._get_formatter()._expand_help(action)
    except (KeyError, TypeError, ValueError):
        pass
    if action.choices and action.option_strings and "{" not in option_flags(action):
        text += f" (one of {', '.join(map(str, action.choices))})"
    elif action.choices and not action.option_strings:
        text += f" (one of {', '.join(map(str, action.choices))})"
    return escape(text.strip()) or "&nbsp;"


def train_note() -> str:
    """Which config key each ``medgan train`` option sets (the task options' keys come from the tasks)."""
    try:
        from medgan.training.tasks import task_options
    except ImportError:  # where the tasks' declarations live on their own
        from medgan.training.tasks.declarations import task_options

    keys = ", ".join(f"{code(option.flag)} sets {code(option.key if '.' in option.key else 'TASK.' + option.key)}"
                     for option in task_options())
    return ("An option left out (default *none*) keeps the value of the config: the recipe's, then the `--config` "
            "file's (see the [configuration reference](config.md)). `--data` sets `data.source`, `--resolution` "
            "`data.resolution`, `--labels` `data.labels`, `--steps N` `train.steps` (and `train.minutes: 0`), "
            "`--minutes M` `train.minutes` (and `train.steps: 0`), `--batch-size` `train.batch_size`, `--seed` "
            "`train.seed`, and `--dp-epsilon`, `--dp-noise`, `--dp-delta`, `--dp-max-grad-norm` the `privacy` "
            f"section. Task options: {keys} (`TASK` is the run's task section).")


def cli_page() -> str:
    from medgan.cli.parser import build_parser

    parser = build_parser()
    lines = ["# Command-line reference", "",
             "Generated from `medgan.cli.parser.build_parser()` when the manual is built: every `medgan` "
             "command and every option, with its default. `medgan COMMAND --help` prints the same.", "",
             "| command | what it does |", "|---|---|"]
    commands = list(subcommands(parser))
    for name, summary, _ in commands:
        lines.append(f"| [`medgan {name}`](#medgan-{name}) | {escape(summary)} |")
    for name, summary, subparser in commands:
        usage = subparser.format_usage().strip().replace("usage: ", "", 1).splitlines()
        usage = [usage[0]] + [line[len("usage: "):] if line.startswith(" " * 7) else line for line in usage[1:]]
        lines += ["", f"## medgan {name}", "", escape(summary), "", "```text", *usage, "```"]
        if name == "train":
            lines += ["", train_note()]
        for group in subparser._action_groups:
            actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
            if not actions:
                continue
            title = group.title or "options"
            lines += ["", f"**{escape(title)}**" + (f": {escape(group.description)}" if group.description else ""),
                      "", "| option | default | meaning |", "|---|---|---|"]
            for action in actions:
                lines.append(f"| {option_flags(action)} | {option_default(action)} | "
                             f"{option_help(subparser, action)} |")
        exclusive = [group for group in subparser._mutually_exclusive_groups if group._group_actions]
        for group in exclusive:
            flags = " and ".join(code(action.option_strings[0]) for action in group._group_actions)
            lines += ["", f"{flags} exclude each other."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Config reference: the comment of every dataclass field, from its source


def _source_comments(path: Path) -> tuple[dict[int, str], set[int], list[str]]:
    """Comments by line number, the lines that hold only a comment, and the file's lines."""
    text = path.read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                tokenize.ENDMARKER, tokenize.ENCODING):
            for line in range(token.start[0], token.end[0] + 1):
                code_lines.add(line)
    comment_only = {line for line in comments if line not in code_lines}
    return comments, comment_only, text.splitlines()


def field_comments(cls: type) -> dict[str, str]:
    """``{field: meaning}`` for the fields ``cls`` itself declares: the comment block right above the field
    (comment-only lines, no blank line between) followed by the comment on the field's own lines."""
    path = Path(inspect.getsourcefile(cls) or "")
    comments, comment_only, _ = _source_comments(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    start = inspect.getsourcelines(cls)[1]
    # inspect starts a decorated class at its first decorator; ast's ClassDef starts at ``class``.
    candidates = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__
                  and min([n.lineno, *(d.lineno for d in n.decorator_list)]) <= start + 1
                  and start <= (n.end_lineno or n.lineno)]
    if not candidates:
        return {}
    node = min(candidates, key=lambda n: abs(n.lineno - start))
    meanings: dict[str, str] = {}
    for statement in node.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        above, line = [], statement.lineno - 1
        while line in comment_only:
            above.insert(0, comments[line])
            line -= 1
        beside = [comments[n] for n in range(statement.lineno, (statement.end_lineno or statement.lineno) + 1)
                  if n in comments and n not in comment_only]
        meanings[statement.target.id] = " ".join(part for part in above + beside if part)
    return meanings


def meanings_of(cls: type) -> dict[str, str]:
    """Field meanings of ``cls`` and the dataclasses it inherits from (a field's own class wins)."""
    merged: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not object:
            merged.update(field_comments(klass))
    return merged


def show(value: Any) -> str:
    """A config value as YAML-ish text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else '""'
    return repr(value)


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def section_table(prefix: str, cls: type) -> list[str]:
    meanings = meanings_of(cls)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(cls):
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        lines.append(f"| {code(f'{prefix}.{field.name}')} | {code(kind)} | {code(show(default_of(field)))} | "
                     f"{escape(meanings.get(field.name, ''))} |")
    return lines


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"section.key": value}`` of a nested dict (lists kept as values)."""
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: values}


def config_page() -> str:
    from medgan.config import to_dict
    from medgan.config.sections import RunConfig
    from medgan.training.tasks import DEMOS, RECIPES, TASKS, recipe

    top = meanings_of(RunConfig)
    lines = ["# Configuration reference", "",
             "Generated from the config dataclasses when the manual is built. A run's `config.yaml` has one "
             "section per table below; `--config FILE.yaml`, the `medgan train` flags and `--set section.key=value` "
             "are applied on top of the recipe (`--model`, default: the task's own recipe), and the whole config "
             "is checked before the run folder is created. A key that does not exist, or a value of the wrong type, "
             "is a one-line error.", "",
             "**Default** below is the key's value before a recipe applies. Recipes change some of them: see "
             "[What each recipe sets](#what-each-recipe-sets). The resolved values of a run are in its "
             "`config.yaml`.", "",
             "## Top level", "", "| key | type | default | meaning |", "|---|---|---|---|",
             f"| `task` | `str` | `{TASKS.default}` | {escape(top.get('task', ''))}; one of "
             f"{', '.join(code(name) for name in TASKS)} |"]
    for field in dataclasses.fields(RunConfig):
        if field.name in ("task", "options"):
            continue
        cls = type(default_of(field))
        doc = inspect.getdoc(cls) or ""
        lines += ["", f"## `{field.name}`", "", escape(doc.splitlines()[0] if doc else ""), ""]
        lines += section_table(field.name, cls)
    lines += ["", "## Task sections", "",
              "Each task owns one more section, named after it (`unpaired:` in YAML, `--set unpaired.cycle=5` on "
              "the command line); a key of another task's section is refused."]
    for name in TASKS:
        task = TASKS.get(name)
        options = task.Options
        lines += ["", f"### `{name}`", ""]
        if not dataclasses.fields(options):
            lines.append("This task has no section of its own.")
            continue
        doc = inspect.getdoc(options) or ""
        lines += [escape(doc.splitlines()[0] if doc else ""), ""]
        lines += section_table(name, options)

    base = flatten(to_dict(RunConfig()))
    lines += ["", "## What each recipe sets", "",
              "`--model NAME` picks a recipe (default: the task's own). Each row lists only the keys whose value "
              "differs from the default column above; the task's own section is listed in full."]
    for name in RECIPES:
        entry = RECIPES.get(name)
        config = recipe(name)
        values = flatten(to_dict(config))
        changed = {key: value for key, value in values.items()
                   if key != "task" and (key.split(".")[0] == config.task or base.get(key) != value)}
        tasks = ", ".join(code(task) for task in entry.tasks)
        fitted = inspect.getdoc(entry.adapt) if entry.adapt is not None else ""
        fitted = f" {escape(' '.join(fitted.split()))}" if fitted else ""
        lines += ["", f"### `{name}`", "", f"Tasks: {tasks}. {escape(entry.summary)}{fitted}", "",
                  "| key | value |", "|---|---|"]
        lines += [f"| {code(key)} | {code(show(value))} |" for key, value in sorted(changed.items())]

    lines += ["", "## Demos", "",
              "`medgan demo NAME` trains the task's recipe with these values on embedded data; the phantom sources "
              "are simulated, not patient data.", "",
              "| demo | task | data | budget (minutes) | what it shows | values on top of the recipe |",
              "|---|---|---|---|---|---|"]
    for name in DEMOS:
        demo = DEMOS.get(name)
        values = ", ".join(code(f"{key}={show(value)}") for key, value in flatten(demo.values).items()) or "none"
        lines.append(f"| `{name}` | `{demo.task}` | `{demo.source}` | {demo.minutes:g} | {escape(demo.what)} | "
                     f"{values} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# The metrics of an image-set evaluation (the report's table)


def metrics_page() -> str:
    from medgan.metrics.catalog import METRICS

    lines = ["# Metrics of an image-set evaluation", "",
             "Generated from `medgan.metrics.catalog.METRICS`, the table that `report.html` shows and that "
             "`metrics.json` holds under `headline`. **Key** is the dotted path into `metrics.json` (also "
             "`medgan.evaluate(...)[key]` in Python); read each value in the direction of **better**, against the "
             "numbers named beside it. [How medgan evaluates](../concepts/evaluation.md) explains the feature "
             "space.", "",
             "| key | metric | better | definition | read against |", "|---|---|---|---|---|"]
    for info in METRICS:
        context = ", ".join(f"{escape(label)}: {code(key)}" for label, key in info.context) or "&nbsp;"
        lines.append(f"| {code(info.key)} | {escape(info.label)} | {escape(info.better)} | "
                     f"{escape(info.definition)} | {context} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# The pretrained models shipped in the package


def zoo_page() -> str:
    lines = ["# Pretrained models", "",
             "Generated from `medgan.zoo.entries()` when the manual is built: the model bundles shipped inside the "
             "package, each with the command that built it, the machine and its measured figures (from its "
             "`ZOO.json`). They load offline by name: `medgan sample --model NAME`, `medgan translate --model NAME`, "
             "`medgan.load(\"NAME\")`; `medgan zoo` lists them. A path that exists wins over a zoo name. Models "
             "trained on the phantom learned from simulated data: they show what medgan does, and are no model of "
             "patients. FIDs are on medgan's offline features ([not a paper's Inception FID]"
             "(../concepts/evaluation.md#fid-on-offline-features-is-not-a-papers-fid)). "
             "[Bundle and share](../how-to/bundle.md) explains what a bundle holds."]
    try:
        from medgan.zoo import entries

        found = entries()
    except ImportError:
        found = []
    if not found:
        return "\n".join(lines + ["", "This build of medgan ships no pretrained models."]) + "\n"
    lines += ["", "| name | what it makes | task | side (px) | steps | size | measured |", "|---|---|---|---|---|---|---|"]
    for entry in found:
        lines.append(f"| `{entry.name}` | {escape(entry.what)} | `{entry.task}` | {entry.resolution} | {entry.steps:,} | "
                     f"{entry.size_bytes / 2**20:.1f} MiB | {escape(entry.figures())} |")
    for entry in found:
        details = entry.details
        lines += ["", f"## {entry.name}", "", escape(entry.what), ""]
        for label, key in (("built with", "command"), ("machine", "machine")):
            if details.get(key):
                lines.append(f"- {label}: {code(details[key])}")
        lines.append(f"- measured: {escape(entry.figures())}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Example configs and scripts


def first_comment(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def first_docstring_line(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except SyntaxError:
        doc = None
    return (doc or first_comment(path)).strip().splitlines()[0] if (doc or first_comment(path)) else ""


def configs_page() -> str:
    lines = ["# Example configs and scripts", "",
             "Generated from the files in the repository's `configs/` and `examples/` folders when the manual is "
             "built. Use a config with `medgan train --config configs/NAME.yaml --data YOUR_DATA --out RUN`: "
             "`--data` and the other flags override the file, and `--set section.key=value` overrides any key "
             "(see the [configuration reference](config.md))."]
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    if configs:
        lines += ["", "## configs/", "", "| file | what it is for |", "|---|---|"]
        lines += [f"| [`configs/{p.name}`](#{p.stem}) | {escape(first_comment(p))} |" for p in configs]
        for path in configs:
            lines += ["", f"### {path.name} {{#{path.stem}}}", "", "```yaml",
                      path.read_text(encoding="utf-8").rstrip(), "```"]
    examples = sorted((ROOT / "examples").glob("*.py"))
    if examples:
        lines += ["", "## examples/", "", "| script | what it does |", "|---|---|"]
        lines += [f"| `examples/{p.name}` | {escape(first_docstring_line(p))} |" for p in examples]
        for path in examples:
            lines += ["", f"### {path.name} {{#example-{path.stem}}}", "", "```python",
                      path.read_text(encoding="utf-8").rstrip(), "```"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# The changelog, inside the manual


def changelog_page() -> str:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")

    def relink(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            return match.group(0)
        if target.startswith("docs/"):
            return f"[{label}]({target[len('docs/'):]})"
        return f"{label} (`{target}`)"  # a repository file outside the manual

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", relink,
                  re.sub(r"!\[([^\]]*)\]\(docs/([^)\s]+)\)", r"![\1](\2)", text))


PAGES = {
    "reference/cli.md": cli_page,
    "reference/config.md": config_page,
    "reference/configs.md": configs_page,
    "reference/metrics.md": metrics_page,
    "reference/zoo.md": zoo_page,
    "changelog.md": changelog_page,
}

for _path, _build in PAGES.items():
    with mkdocs_gen_files.open(_path, "w") as _file:
        _file.write(_build())
    mkdocs_gen_files.set_edit_path(_path, "gen_reference.py")
