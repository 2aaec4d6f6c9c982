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
        DataError: missing, empty or unreadable CSV; a header without ``label``; a short row; an empty label;
            a file that does not exist; a file listed twice; an attribute that is not a finite number.
    """
    path = Path(path)
    rows = _csv_rows(path)
    header = [cell.strip().lower() for cell in rows[0]]
    if "label" in header:
        label_column = header.index("label")
        file_column = next((header.index(name) for name in FILE_COLUMNS if name in header), None)
        if file_column is None:
            raise DataError(f"the header needs a file column ({', '.join(FILE_COLUMNS)}), got {rows[0]!r}", path)
        body, first_number = rows[1:], 2
    elif len(rows[0]) == 2:
        header, file_column, label_column, body, first_number = ["file", "label"], 0, 1, rows, 1
    else:
        raise DataError(f"the first row must be a header with 'file' and 'label' columns, got {rows[0]!r}", path)
    if not body:
        raise DataError("labels file has no rows below its header", path)
    attributes = [(index, rows[0][index].strip()) for index in range(len(header))
                  if index not in (file_column, label_column)]
    folders = ([Path(root)] if root is not None else []) + [path.parent]
    table: dict[str, LabelRow] = {}
    for number, row in enumerate(body, start=first_number):
        if len(row) < len(header):
            raise DataError(f"row {number} has {len(row)} columns, the header has {len(header)}", path)
        name, label = row[file_column].strip(), row[label_column].strip()
        if not label:
            raise DataError(f"row {number}: empty label for {name!r}", path)
        candidate = Path(name)
        exists = candidate.exists() if candidate.is_absolute() else any((folder / name).exists() for folder in folders)
        if not name or not exists:
            looked = ", ".join(str(folder) for folder in folders)
            raise DataError(f"row {number}: file {name!r} does not exist (looked in {looked})", path)
        if name in table:
            raise DataError(f"row {number}: file {name!r} is listed twice", path)
        values = tuple(_number(row[index], number, attribute, path) for index, attribute in attributes)
        table[name] = LabelRow(label, values)
    return LabelTable(path, table, tuple(name for _, name in attributes))


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
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"row {row}: attribute {attribute!r} value {text!r} is not a number", path) from None
    if not np.isfinite(value):
        raise DataError(f"row {row}: attribute {attribute!r} value {text!r} is not finite", path)
    return value
