import json

import numpy as np
import pytest

from shiftlab.data.table import TableOptions, csv_table, jsonl_table
from shiftlab.errors import DataError

ROWS = [
    ("great phone", "pos", "shop"),
    ("awful battery", "neg", "shop"),
    ("loved it", "pos", "forum"),
    ("never again", "neg", "forum"),
    ("", "pos", "forum"),  # empty text: skipped
]


def write_csv(path, rows, header=("review", "sentiment", "site")):
    lines = [",".join(header)] + [",".join(f'"{c}"' for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_with_string_labels_and_domains(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    cfg = TableOptions(str(path), "review", "sentiment", "site")
    data = csv_table(cfg, None)
    assert data.class_names == ["neg", "pos"]
    assert list(data.domains) == ["shop", "forum"]
    assert data.domains["shop"].inputs == ["great phone", "awful battery"]
    assert data.domains["forum"].labels.tolist() == [1, 0]


def test_class_names_fix_the_label_order(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    data = csv_table(TableOptions(str(path), "review", "sentiment", "site"), ["pos", "neg"])
    assert data.domains["shop"].labels.tolist() == [0, 1]


def test_integer_labels_index_class_names(tmp_path):
    rows = [("a", "1", "x"), ("b", "0", "x")]
    path = write_csv(tmp_path / "d.csv", rows)
    data = csv_table(TableOptions(str(path), "review", "sentiment", "site"), ["bad", "good"])
    assert data.domains["x"].labels.tolist() == [1, 0]


def test_label_outside_class_names_is_named(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match="label 'pos' in column 'sentiment' is not among"):
        csv_table(TableOptions(str(path), "review", "sentiment", "site"), ["neg", "bad"])


def test_missing_column_is_named_with_a_suggestion(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    with pytest.raises(DataError, match=r"column 'reviews' \(data.text_column\).*did you mean"):
        csv_table(TableOptions(str(path), "reviews", "sentiment", "site"), None)


def test_single_class_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("a", "pos", "x"), ("b", "pos", "y")])
    with pytest.raises(DataError, match="label column 'sentiment' has only one class"):
        csv_table(TableOptions(str(path), "review", "sentiment", "site"), None)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        csv_table(TableOptions(str(tmp_path / "none.csv")), None)


def test_without_domain_column_all_rows_form_one_domain(tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    data = csv_table(TableOptions(str(path), "review", "sentiment"), None)
    assert list(data.domains) == ["all"]
    assert len(data.domains["all"]) == 4


def test_jsonl_reads_objects_and_groups(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"t": "x", "y": 1, "g": "a"},
        {"t": "z", "y": 0, "g": "b"},
        {"t": "w", "y": 1, "g": "a"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = jsonl_table(TableOptions(str(path), "t", "y", group_column="g"), None)
    assert data.class_names == ["0", "1"]
    assert data.group_names == ["a", "b"]
    np.testing.assert_array_equal(data.domains["all"].groups, [0, 1, 0])


def test_jsonl_bad_line_is_located(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"d.jsonl:2 is not valid JSON"):
        jsonl_table(TableOptions(str(path)), None)
