"""``RunDir``: the one owner of a run directory's layout, files and checkpoints.

A run directory is the unit of reproducibility::

    config.yaml          the resolved config (RunConfig)
    data.json            the data spec, human-readable (the checkpoint holds the copy that is read back)
    checkpoints/         latest.pt and best.pt (atomic writes; see medgan.checkpoint)
    samples/             grids over training, final.png
    losses.jsonl         one JSON object per log interval
    metrics.jsonl        one JSON object per in-training evaluation
    train.log            human-readable log
    loss_curve.png       losses over steps

Training, sampling, evaluation, utility and the CLI all reach these files through this class.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from medgan.checkpoint import load_checkpoint, save_checkpoint
from medgan.config import RunConfig, first_difference, load_yaml, save_yaml, saved_config, to_dict
from medgan.data.spec import DataSpec
from medgan.errors import CheckpointError, ConfigError, DataError, MedganError
from medgan.utils import atomic_write_text
from medgan.visuals import read_jsonl

CHECKPOINTS = ("best", "latest")
STAGING_LOCK = ".lock"  # in a staging folder: held (flock) by the process building the run
# The temporary files of medgan.utils.atomic_path / atomic_write_files: ".<stem>.<16 hex digits><suffixes>".
TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{16}(\.[^/]*)?$")


class RunDir:
    """Paths and readers/writers of one run directory.

    Args:
        path: the run directory (it need not exist yet).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._place(self.path)
        self._created: list[Path] | None = None  # folders ``create`` made (None: create not called)
        self._existing: set[str] = set()  # entries of the folder before ``create``
        self._staging: Path | None = None  # where a new run lives until its first checkpoint (see ``create``)
        self._lock: int | None = None  # the descriptor holding the staging folder's lock

    def _place(self, root: Path) -> None:
        """Points the run's files at ``root``: the run directory, or its staging folder."""
        self.config_file = root / "config.yaml"
        self.data_file = root / "data.json"
        self.checkpoints = root / "checkpoints"
        self.samples = root / "samples"
        self.losses_file = root / "losses.jsonl"
        self.metrics_file = root / "metrics.jsonl"
        self.log_file = root / "train.log"
        self.loss_curve = root / "loss_curve.png"

    @staticmethod
    def staging_path(path: str | Path) -> Path:
        """The hidden sibling ``.NAME.partial`` in which a new run directory ``NAME`` is built."""
        path = Path(path)
        return path.parent / f".{path.name}.partial"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def latest(self) -> Path:
        return self.checkpoint_file("latest")

    @property
    def best(self) -> Path:
        return self.checkpoint_file("best")

    def checkpoint_file(self, which: str) -> Path:
        """``checkpoints/<which>.pt`` (which: "best" or "latest")."""
        return self.checkpoints / f"{which}.pt"

    # ---------------------------------------------------------------------------------------------------
    # recognising and creating

    @staticmethod
    def is_run(path: str | Path) -> bool:
        """True for a ``medgan train`` run directory (``config.yaml`` beside ``checkpoints/``)."""
        path = Path(path)
        return (path / "config.yaml").is_file() and (path / "checkpoints").is_dir()

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        """An existing run directory; anything else raises CheckpointError naming the path."""
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError("run directory not found", path)
        if not cls.is_run(path):
            raise CheckpointError("not a medgan run directory (expected config.yaml and checkpoints/)", path)
        return cls(path)

    def check_writable(self) -> None:
        """Raises a one-line MedganError when the run directory cannot be created or written.

        Checked before anything is created: an existing file, a path below a file, a folder without write
        permission, or a symbolic link to nothing.
        """
        check_output_folder(self.path, "--out")
        if self.path.is_symlink() and not self.path.exists():
            raise ConfigError("--out is a symbolic link to nothing; give a folder", self.path)

    def check_new(self) -> None:
        """Refuses to start a new run over an existing one."""
        if self.latest.exists():
            raise ConfigError("run directory already holds a checkpoint; pass --resume to continue it or choose "
                              "another --out", self.path)

    def create(self) -> None:
        """Creates the directory and its sub-folders, noting what existed before (see ``discard_unfinished``).

        A run directory that does not exist yet is built as its hidden sibling ``.NAME.partial`` and renamed to
        ``NAME`` when the first checkpoint is written (``save_checkpoint``), so a run killed before then, even by
        ``kill -9``, leaves no run directory; the next run into ``NAME`` removes the leftover. An existing folder
        (made by the user) is written in place.
        """
        self.check_writable()
        self._created = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        self._existing = set(os.listdir(self.path)) if self.path.is_dir() else set()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = self.staging_path(self.path)
            self._lock = _claim_staging(staging, self.path)
            self._staging = staging
            self._place(staging)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.samples.mkdir(parents=True, exist_ok=True)

    def _commit(self) -> None:
        """Renames the staging folder to the run directory (at the first checkpoint)."""
        staging, self._staging = self._staging, None
        assert staging is not None
        try:
            os.rename(staging, self.path)
        except OSError as error:
            # The checkpoint is written: keep the run where it is (discard_unfinished must not remove it).
            self._created = None
            self._release()
            raise ConfigError(f"could not move the run from {staging.name} to its name ({os.strerror(error.errno)}: "
                              f"did something create {self.path.name} meanwhile?); the run is kept in {staging}: "
                              "rename it and continue with --resume", self.path) from None
        self._place(self.path)
        (self.path / STAGING_LOCK).unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing releases the lock
            self._lock = None

    def discard_unfinished(self) -> None:
        """Removes what this process created since ``create``, unless a checkpoint was written.

        A new run that fails (a full disk, a diverged loss, Ctrl-C, SIGTERM through ``medgan.cli``) before its
        first checkpoint cannot be resumed, so it leaves nothing behind. Entries that were in the folder before
        ``create`` stay.
        """
        created = self._created
        # The run's own latest.pt (not ``self.latest``, which points into the staging folder until the rename).
        if created is None or (self._staging is None and (self.path / "checkpoints" / "latest.pt").exists()):
            return
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
            self._release()
            self._place(self.path)
        elif self.path in created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir():
            for name in set(os.listdir(self.path)) - self._existing:
                entry = self.path / name
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        for folder in created[1:]:  # parents of a new run directory, deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created = None

    # ---------------------------------------------------------------------------------------------------
    # config and data spec

    def write_config(self, config: RunConfig) -> None:
        save_yaml(config, self.config_file)

    def read_config(self) -> RunConfig:
        """The run's config.yaml, validated; a bad file raises ConfigError naming it."""
        try:
            return saved_config(load_yaml(self.config_file))
        except ConfigError as error:
            raise ConfigError(error.message, error.path or self.config_file) from None

    def check_checkpoint(self, config: dict[str, Any], spec: dict[str, Any], path: Path) -> None:
        """Refuses a checkpoint (``path``, with its saved ``config`` and data ``spec``) that does not belong to this
        run, e.g. one copied in from another run: its config must be config.yaml's (the budget aside, which every
        resume sets anew) and its data spec data.json's. A missing file is not compared (the resume writes it)."""
        compared = []
        if self.config_file.is_file():
            compared.append(("config.yaml", to_dict(saved_config(config)), to_dict(self.read_config())))
        if self.data_file.is_file():
            try:
                ours = json.loads(self.data_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ConfigError(f"unreadable data spec ({type(error).__name__}); delete it and --resume writes it "
                                  "again", self.data_file) from None
            compared.append(("data.json", json.loads(json.dumps(spec, default=repr)), ours))
        for name, theirs, ours in compared:
            difference = first_difference(theirs, ours, skip=("train.steps", "train.minutes", "train.cpu_minutes"))
            if difference is not None:
                key, value, own = difference
                raise CheckpointError(f"trained with {key} {value!r}, but this run's {name} has {own!r}: a checkpoint "
                                      "of another run? Resume the run it belongs to, or put this run's own checkpoint "
                                      "back", path)

    def write_data_spec(self, spec: DataSpec) -> None:
        """A readable copy of the data spec (``data.json``); the checkpoint holds the one read back."""
        atomic_write_text(self.data_file, json.dumps(spec.to_dict(), indent=2))

    # ---------------------------------------------------------------------------------------------------
    # checkpoints

    def checkpoint_path(self, which: str = "best") -> Path:
        """The ``which`` checkpoint, falling back to latest.pt; none raises CheckpointError."""
        for name in (which, "latest"):
            path = self.checkpoint_file(name)
            if path.is_file():
                return path
        raise CheckpointError("no checkpoint in this run directory (expected checkpoints/latest.pt)", self.path)

    def save_checkpoint(self, which: str, state: dict[str, Any]) -> Path:
        """Writes ``checkpoints/<which>.pt`` atomically; the first latest.pt of a new run moves the run from its
        staging folder to its own name (see ``create``)."""
        save_checkpoint(self.checkpoint_file(which), state)
        if which == "latest" and self._staging is not None:
            self._commit()
        return self.checkpoint_file(which)

    def load_checkpoint(self, which: str = "best") -> tuple[dict[str, Any], Path]:
        """The verified ``which`` checkpoint (falling back to latest) and its path."""
        path = self.checkpoint_path(which)
        return load_checkpoint(path), path

    def load_inference(self, which: str = "best") -> "RunState":
        """What inference needs from a checkpoint: config, data spec and the inference state."""
        state, path = self.load_checkpoint(which)
        return RunState.from_checkpoint(state, path)

    def remove_stale_temporaries(self) -> list[Path]:
        """Deletes the temporary files a killed process left behind (``checkpoints/.latest.<random>.pt``, and
        likewise for sample grids, logs and the config: every name ``medgan.utils.atomic_path`` makes)."""
        removed = []
        for folder in (self.path, self.checkpoints, self.samples):
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    hidden = path.name.startswith(".") and (path.suffix == ".pt" if folder == self.checkpoints
                                                            else bool(TEMPORARY_NAME.match(path.name)))
                    if hidden and path.is_file():
                        path.unlink(missing_ok=True)
                        removed.append(path)
        return removed

    # ---------------------------------------------------------------------------------------------------
    # logs

    def append_loss(self, record: dict[str, Any]) -> None:
        _append_jsonl(self.losses_file, record)

    def append_metrics(self, record: dict[str, Any]) -> None:
        _append_jsonl(self.metrics_file, record)

    def read_losses(self) -> list[dict]:
        return read_jsonl(self.losses_file)

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def truncate_logs(self, step: int) -> None:
        """Drops log records after ``step`` (on resume, the steps after the last checkpoint are redone)."""
        for path in (self.losses_file, self.metrics_file):
            if path.is_file():
                kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
                atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))

    def log(self, message: str) -> None:
        """Appends a time-stamped line to train.log."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        _append(self.log_file, f"{stamp} {message}\n")


class RunState:
    """The parts of a checkpoint that inference needs.

    Args:
        config: the run's resolved config.
        spec: the run's data spec.
        inference: the inference state (``{"kind": ..., ...}``; see ``medgan.inference``).
        path: the checkpoint file it came from.
    """

    def __init__(self, config: RunConfig, spec: DataSpec, inference: dict[str, Any], path: Path) -> None:
        self.config = config
        self.spec = spec
        self.inference = inference
        self.path = path

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any], path: Path) -> "RunState":
        """Validates the config, spec and inference sections; anything malformed raises CheckpointError."""
        try:
            config = saved_config(state["config"])
            spec = DataSpec.from_dict(state["data_spec"])
            inference = state["inference"]
            if not isinstance(inference, dict) or not isinstance(inference.get("kind"), str):
                raise CheckpointError("checkpoint has no inference state", path)
        except (ConfigError, DataError, KeyError, TypeError) as error:
            detail = error.message if isinstance(error, MedganError) else f"{type(error).__name__}: {error}"
            raise CheckpointError(f"checkpoint is incomplete or incompatible ({detail})", path) from None
        return cls(config, spec, inference, path)


def check_output_folder(path: str | Path, option: str) -> None:
    """Raises a one-line MedganError when ``path`` cannot be (created and) written as a folder.

    Args:
        path: the output folder.
        option: the CLI option that named it (for the message).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} is an existing file, not a folder", path)
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} lies below a file ({parent.name} is not a folder)", path)
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: no permission to write in {parent}", path)


def _claim_staging(staging: Path, run: Path) -> int | None:
    """Creates (or takes over) the staging folder of a new run and locks it; a leftover of a killed run is
    emptied, one that a live process holds is refused. Returns the lock's descriptor (None without fcntl)."""
    staging.mkdir(exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): a leftover is taken over
        fcntl = None
    descriptor = None
    if fcntl is not None:
        descriptor = os.open(staging / STAGING_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise ConfigError(f"another medgan train is starting a run here (it builds it in {staging.name} until "
                              "its first checkpoint); choose another --out", run) from None
        except OSError:  # a file system without flock (Lustre -o noflock, NFS without a lock daemon): go on unlocked
            os.close(descriptor)
            descriptor = None
    for entry in staging.iterdir():  # what a killed run left
        if entry.name == STAGING_LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return descriptor


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Appends one JSON line (a single write, so a crash leaves at most a torn last line)."""
    _append(path, json.dumps(record) + "\n")


def _append(path: Path, text: str) -> None:
    """Appends ``text`` to a log file; a failed write (a full disk) raises OSError naming the file."""
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        if error.filename is not None or error.errno is None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None
