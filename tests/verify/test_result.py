"""What an import check reports (builder/verify/result.py), whichever checker ran it."""

from __future__ import annotations

import json

import pytest

from builder.verify.result import ImportCheck, interpreter_died, results_to_check, timed_out


def test_a_check_that_ran_out_of_time_names_the_module_it_was_stuck_in() -> None:
    written = json.dumps({"results": {"six": None}})
    check = timed_out("here", ["six", "slow", "later"], written, 30)
    assert (check.status, check.reason) == ("failed", "importing slow did not finish in 30s")
    assert check.modules == {"six": None, "slow": "TimeoutError: importing slow did not finish in 30s"}
    # Nothing written at all: stuck in the first one.
    assert timed_out("here", ["first"], None, 1.5).failures() == {
        "first": "TimeoutError: importing first did not finish in 1.5s"
    }


def test_an_interpreter_that_wrote_nothing_is_a_failure_with_its_last_words() -> None:
    output = ["", "line 1", "line 2", "  ", "line 3", "line 4", "line 5", "Segmentation fault"]
    check = interpreter_died("image x", 139, output)
    assert check.status == "failed"
    assert check.reason == "the interpreter exited with 139: line 3 | line 4 | line 5 | Segmentation fault"
    assert check.modules == {}


def test_results_pass_only_when_every_module_imported() -> None:
    assert results_to_check("here", {"a": None, "b": None}).status == "passed"
    failed = results_to_check("here", {"a": None, "b": "ImportError: no"})
    assert (failed.status, failed.failures()) == ("failed", {"b": "ImportError: no"})


@pytest.mark.parametrize(
    "check",
    [
        ImportCheck(status="passed", where="image x", modules={"six": None}),
        ImportCheck(status="not-verified", where="", reason="no checker"),
        ImportCheck(status="failed", where="local", modules={"a": "boom"}, reason="r"),
    ],
)
def test_a_check_reads_back_as_it_was_written(check: ImportCheck) -> None:
    assert ImportCheck.from_dict(json.loads(json.dumps(check.to_dict()))) == check


def test_a_check_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ImportCheck.from_dict({"status": "maybe"})
