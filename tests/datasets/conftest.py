"""Fixtures of the dataset-check tests: what the checks log, read at the source.

Reading the log from captured stdout fails once an earlier test has created mmengine's logger: its
stream handler keeps the stdout of that moment, not this test's ``capsys`` (the first CI run of the
full suite lost the warnings this way)."""
import logging

import pytest

from tsd_mmdet.datasets import checks


@pytest.fixture
def logged(monkeypatch):
    """``[(level_name, message)]`` of every ``print_log`` call of ``tsd_mmdet.datasets.checks``
    during the test, still forwarded to the logger."""
    records = []
    forward = checks.print_log

    def record(msg, logger=None, level=logging.INFO):
        records.append((logging.getLevelName(level), str(msg)))
        return forward(msg, logger=logger, level=level)

    monkeypatch.setattr(checks, 'print_log', record)
    return records
