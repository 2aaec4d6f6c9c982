"""Hardening: every header and row problem of a labels CSV gets its own one-line error naming the CSV (exit 2,
no traceback, nothing written), in ``medgan train --task conditional --labels``."""

import numpy as np
import pytest
from PIL import Image

from medgan.cli import main
from medgan.data.labels import read_label_table

from helpers import TINY

BAD_TABLES = {
    "no label column": ("file,age\na.png,3\nb.png,4\n", "the header has no 'label' column; its columns are 'file', 'age'"),
    "no label, two columns": ("file,diagnosis\na.png,cyst\n", "the header has no 'label' column"),
    "no file column": ("label,age\ncyst,3\n", "the header has no file column (one of: file, path"),
    "unnamed column": ("file,label,\na.png,cyst,3\nb.png,cyst,4\n", "column 3 of the header has no name"),
    "column twice": ("file,label,age,Age\na.png,cyst,3,4\nb.png,cyst,3,4\n", "column 'Age' appears twice in the header"),
    "unknown header": ("image_path,diagnosis\na.png,cyst\n",
                       "row 1: file 'image_path' does not exist (looked in"),
    "three columns, no header": ("a.png,cyst,3\nb.png,cyst,4\n", "the first row must be a header"),
    "empty file": ("", "labels file is empty"),
    "blank lines only": ("\n \n", "labels file is empty"),
    "header only": ("file,label\n", "labels file has no rows below its header"),
    "duplicated row": ("file,label\na.png,cyst\nb.png,cyst\na.png,cyst\n",
                       "row 4: file 'a.png' is listed twice (first on row 2)"),
    "duplicated spelling": ("file,label\na.png,cyst\n./a.png,metastasis\nb.png,cyst\n",
                            "row 3: file './a.png' is listed twice"),
    "text attribute": ("file,label,age\na.png,cyst,old\nb.png,cyst,4\n", "row 2: attribute 'age' value 'old' is not"),
    "empty attribute": ("file,label,age\na.png,cyst,\nb.png,cyst,4\n", "row 2: attribute 'age' is empty"),
    "infinite attribute": ("file,label,age\na.png,cyst,inf\n", "row 2: attribute 'age' value 'inf' is not finite"),
    "short row": ("file,label,age\na.png,cyst\n", "row 2 has 2 columns, the header has 3"),
    "long row": ("file,label\na.png,cyst,simple\nb.png,cyst\n", "row 2 has 3 values, the header has 2 columns"),
    "empty label": ("file,label\na.png, \n", "row 2: empty label for 'a.png'"),
    "missing file": ("file,label\na.png,cyst\nc.png,cyst\n", "row 3: file 'c.png' does not exist"),
    "image without a row": ("file,label\na.png,cyst\n", "no row for b.png"),
}


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for index, name in enumerate(("a.png", "b.png")):
        Image.fromarray((np.arange(256).reshape(16, 16) * (index + 1) % 256).astype(np.uint8)).save(folder / name)
    return folder


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_labels_csv_problems_get_one_line_errors(tmp_path, capsys, pictures, case):
    text, fragment = BAD_TABLES[case]
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    before = sorted(tmp_path.rglob("*"))
    code = main(["train", "--data", str(pictures), "--labels", str(labels), "--task", "conditional",
                 "--out", str(tmp_path / "run"), "--steps", "2", *TINY])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"error: {labels}: ") and fragment in lines[0], lines[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_a_good_table_with_a_header_or_without(tmp_path, pictures):
    labels = tmp_path / "labels.csv"
    labels.write_text(" File , Label ,Age\n./a.png,cyst,3\nb.png,metastasis,4.5,\n")  # trailing empty cell is fine
    table = read_label_table(labels, pictures)
    assert table.attribute_names == ("Age",) and table.rows["a.png"].attributes == (3.0,)
    labels.write_text("a.png,cyst\nb.png,metastasis\n")
    assert read_label_table(labels, pictures).rows["b.png"].label == "metastasis"
