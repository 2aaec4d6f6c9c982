"""Labels CSV: one class label per image or volume, optionally with continuous attributes.

The one reader for every data path (generic folders, LiTS/MSD layouts). The CSV has a ``file`` column and a
``label`` column; any further columns are numeric attributes (age, dose, lesion diameter...) that a conditional
GAN can take as continuous conditions::

    file,label,age
    case01.nii.gz,metastasis,61
    case02.nii.gz,cyst,47.5

A header is optional when the CSV has exactly the two columns ``file,label``. The file column may also be
called ``path``, ``image``, ``filename`` or ``name``. Every listed file must exist (relative to the data folder
or to the CSV's folder, or absolute), and every image must have a row: a row is matched by the image's path
relative to the data folder, its file name, or its name without image suffixes.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medgan.data.readers import subject_of
from medgan.errors import DataError

FILE_COLUMNS = ("file", "path", "image", "filename", "name")


@dataclass(frozen=True)
class LabelRow:
    """One CSV row: the class name and the attribute values (in the table's ``attribute_names`` order)."""

    label: str
    attributes: tuple[float, ...]


@dataclass(frozen=True)
class LabelTable:
    """A parsed labels CSV.

    Attributes:
        path: the CSV file (named in errors).
        rows: row per file key, as written in the CSV.
        attribute_names: names of the numeric attribute columns, in CSV order (may be empty).
    """

    path: Path
    rows: dict[str, LabelRow]
    attribute_names: tuple[str, ...]

    def row_for(self, file: Path, root: Path, subject: str | None = None) -> LabelRow:
        """The row of ``file``: matched by its path relative to ``root``, its name, its full path, its name
        without image suffixes, or ``subject``.

        Raises:
            DataError: no row matches (the CSV is named, with the image's relative path).
        """
        shown = file.relative_to(root).as_posix() if root.is_dir() and file.is_relative_to(root) else file.name
        for key in (shown, file.name, str(file), subject_of(file), subject):
            if key is not None and key in self.rows:
                return self.rows[key]
        raise DataError(f"no row for {shown} (the CSV needs a row for every image)", self.path)


def read_label_table(path: str | Path, root: str | Path | None = None) -> LabelTable:
    """Reads and checks a labels CSV.

    Args:
        path: the CSV file.
        root: the data folder that relative file names refer to; the CSV's own folder is tried too.

    Returns:
        The table.

    Raises:
        DataError: missing, empty or unreadable CSV; a header without a file or a ``label`` column, with a
            column named twice or not at all; a row with too few or too many values; an empty label; a file that
            does not exist; a file listed twice; an attribute that is empty or not a finite number.
    """
    path = Path(path)
    rows = _csv_rows(path)
    file_column, label_column, names, body, first_number = _header(rows, path)
    if not body:
        raise DataError("labels file has no rows below its header", path)
    attributes = [(index, names[index]) for index in range(len(names)) if index not in (file_column, label_column)]
    folders = ([Path(root)] if root is not None else []) + [path.parent]
    table: dict[str, LabelRow] = {}
    first_row: dict[str, int] = {}
    for number, row in enumerate(body, start=first_number):
        if len(row) < len(names):
            raise DataError(f"row {number} has {len(row)} columns, the header has {len(names)}", path)
        if any(cell.strip() for cell in row[len(names):]):
            raise DataError(f"row {number} has {len(row)} values, the header has {len(names)} columns (a comma "
                            "inside a value needs quotes)", path)
        name, label = row[file_column].strip(), row[label_column].strip()
        if not name:
            raise DataError(f"row {number}: empty file name", path)
        if not label:
            raise DataError(f"row {number}: empty label for {name!r}", path)
        candidate = Path(name)
        exists = candidate.exists() if candidate.is_absolute() else any((folder / name).exists() for folder in folders)
        if not exists:
            looked = ", ".join(str(folder) for folder in folders)
            hint = " (a header needs 'file' and 'label' columns)" if number == 1 else ""
            raise DataError(f"row {number}: file {name!r} does not exist (looked in {looked}){hint}", path)
        key = candidate.as_posix()  # "./a.png" and "a.png" are one file
        if key in table:
            raise DataError(f"row {number}: file {name!r} is listed twice (first on row {first_row[key]})", path)
        values = tuple(_number(row[index], number, attribute, path) for index, attribute in attributes)
        table[key], first_row[key] = LabelRow(label, values), number
    return LabelTable(path, table, tuple(name for _, name in attributes))


def _header(rows: list[list[str]], path: Path) -> tuple[int, int, list[str], list[list[str]], int]:
    """``(file column, label column, column names, body rows, number of the first body row)``.

    A first row that names a file column or ``label`` is a header and must name both; without a header the CSV
    must have exactly the two columns ``file,label``.
    """
    names = [cell.strip() for cell in rows[0]]
    lower = [name.lower() for name in names]
    if not any(name in FILE_COLUMNS or name == "label" for name in lower):
        if len(names) == 2:
            return 0, 1, ["file", "label"], rows, 1
        raise DataError(f"the first row must be a header with 'file' and 'label' columns, got {rows[0]!r}", path)
    columns = ", ".join(repr(name) for name in names)
    file_column = next((lower.index(name) for name in FILE_COLUMNS if name in lower), None)
    if file_column is None:
        raise DataError(f"the header has no file column (one of: {', '.join(FILE_COLUMNS)}); its columns are "
                        f"{columns}", path)
    if "label" not in lower:
        raise DataError(f"the header has no 'label' column; its columns are {columns}", path)
    for index, name in enumerate(lower):
        if not name:
            raise DataError(f"column {index + 1} of the header has no name; its columns are {columns}", path)
        if lower.index(name) != index:
            raise DataError(f"column {names[index]!r} appears twice in the header", path)
    return file_column, lower.index("label"), names, rows[1:], 2


def sorted_classes(names: Sequence[str] | set[str]) -> tuple[str, ...]:
    """Class names in a stable order: numbers numerically, then text."""

    def key(name: str) -> tuple:
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)

    return tuple(sorted(set(names), key=key))


def _csv_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DataError("labels file not found", path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        rows = [row for row in csv.reader(lines) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"not a readable CSV ({error})", path) from None
    if not rows:
        raise DataError("labels file is empty", path)
    return rows


def _number(text: str, row: int, attribute: str, path: Path) -> float:
    if not text.strip():
        raise DataError(f"row {row}: attribute {attribute!r} is empty (every row needs a number)", path)
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"row {row}: attribute {attribute!r} value {text!r} is not a number", path) from None
    if not np.isfinite(value):
        raise DataError(f"row {row}: attribute {attribute!r} value {text!r} is not finite", path)
    return value
