"""The row type: the CSV's columns are its fields, and a row survives both of its round trips."""

from __future__ import annotations

import csv
import dataclasses
import io

from llmclient.schema import COLUMNS, HEADER, NAMES, Row, csv_line, ends_session


def a_full_row() -> Row:
    """Every field set to a value that is not its default."""
    values = {"text": 'a "quoted", text', "float": 0.1234567891, "int": 42, "bool": True, "gaps": (0.0025, 0.003)}
    return Row(**{c.name: values[c.kind] for c in COLUMNS})


def test_the_columns_are_the_rows_fields_each_with_a_kind_and_a_meaning():
    assert [f.name for f in dataclasses.fields(Row)] == NAMES
    assert all(c.meaning and c.kind in ("text", "float", "int", "bool", "gaps") for c in COLUMNS)
    assert ",".join(NAMES) + "\n" == HEADER


def test_a_row_survives_the_csv_and_the_trip_to_the_master():
    row = a_full_row()
    shipped = Row.from_fields(row.fields())
    assert shipped == row
    (read,) = csv.DictReader(io.StringIO(HEADER + csv_line(row.fields())))
    assert Row.from_mapping(read) == row


def test_a_row_shipped_by_an_older_worker_lacks_only_its_last_columns():
    row = a_full_row()
    older = Row.from_fields(row.fields()[:-5])
    assert older == dataclasses.replace(row, resent=None, resent_error="", session_id="", turn=None, last_turn=False)
    # it ends no session: the master counts sessions by the rows that end one
    assert ends_session(row.fields()) and not ends_session(row.fields()[:-5])
