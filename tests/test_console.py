"""turngym.console: the table printer, the progress reporter and the --json helper, in-process."""

from __future__ import annotations

import io
import json
import time

import pytest

from turngym import console
from turngym.console import Column, Progress, emit_json, format_duration, print_table, styled


@pytest.fixture(autouse=True)
def not_quiet():
    before = console.is_quiet()
    console.set_quiet(False)
    yield
    console.set_quiet(before)


def test_a_piped_table_is_tsv_with_a_header_and_whole_cells(capsys):
    long_id = "turngym/Household-PickTwoObjectsAndPlaceThemVeryCarefully-v0"
    print_table([Column("id"), Column("n", "right"), "note"],
                [(long_id, 3, "tab\there\nand a newline"), ("x", 1.5, styled("PASS", "green"))], title="the title")
    out, err = capsys.readouterr()
    assert out.splitlines() == ["id\tn\tnote", f"{long_id}\t3\ttab here and a newline", "x\t1.5\tPASS"]
    assert err == "the title\n"


def test_a_table_in_a_terminal_is_drawn_and_never_cuts_a_cell():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    ids = [f"turngym/SomeRatherLongEnvironmentName{i}-v0" for i in range(3)]
    print_table(["id", "description"], [(i, "words " * 40) for i in ids], file=screen)
    text = screen.getvalue()
    assert "…" not in text and all(i in text for i in ids)


def test_rows_must_match_the_columns():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        print_table(["a", "b", "c"], [(1, 2)])


def test_progress_without_a_terminal_prints_a_start_and_a_final_line_and_throttles(capsys):
    with Progress("eval greedy", 100, unit="episodes", interval=3600, live=False) as progress:
        for _ in range(100):
            progress.advance(info="success 0.50")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines  # everything between is throttled away
    assert lines[0].startswith("eval greedy: 0/100 episodes (0%) · ")
    assert lines[1].startswith("eval greedy: 100/100 episodes (100%) · success 0.50 · done in ")


def test_progress_prints_each_change_when_the_interval_allows_and_never_a_carriage_return(capsys):
    with Progress("check", 3, unit="envs", interval=0, live=False) as progress:
        for i, env_id in enumerate(("a", "b", "c")):
            progress.update(i + 1, info=f"{env_id} PASS")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(" · ")[0] for line in err.splitlines()][:4] == [
        "check: 0/3 envs (0%)", "check: 1/3 envs (33%)", "check: 2/3 envs (67%)", "check: 3/3 envs (100%)"]


def test_a_phase_that_does_not_move_still_prints_a_heartbeat(capsys, monkeypatch):
    monkeypatch.setattr(console, "HEARTBEAT_S", 0.05)
    progress = Progress("model preparation", interval=0.01, live=False)
    assert capsys.readouterr().err.startswith("model preparation: ")  # the start line
    heartbeats = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "elapsed" not in heartbeats:
        time.sleep(0.02)  # the background thread prints while this "long call" runs
        heartbeats += capsys.readouterr().err
    progress.close()
    assert "model preparation: " in heartbeats and "elapsed" in heartbeats
    assert "model preparation: done in" in capsys.readouterr().err


def test_quiet_silences_progress_and_notes_but_not_errors(capsys):
    console.set_quiet(True)
    with Progress("train", 2, live=False) as progress:
        progress.advance()
        progress.note("warning: something")
    console.note("training → runs/x")
    console.error("bad value 'x'")
    assert capsys.readouterr().err == "error: bad value 'x'\n"


def test_an_exception_ends_the_phase_with_a_stopped_line(capsys):
    with pytest.raises(RuntimeError), Progress("tournament", 10, unit="games", live=False) as progress:
        progress.advance(3)
        raise RuntimeError("worker died")
    assert "tournament: stopped (RuntimeError) after" in capsys.readouterr().err


def test_emit_json_goes_to_stdout_or_a_file(tmp_path, capsys):
    from pathlib import Path

    assert emit_json({"path": Path("/x"), "n": 1}, "-") is True
    assert json.loads(capsys.readouterr().out) == {"path": "/x", "n": 1}
    target = tmp_path / "sub" / "out.json"
    assert emit_json([1, 2], str(target)) is False
    assert json.loads(target.read_text()) == [1, 2] and capsys.readouterr().out == ""
    assert emit_json({"a": 1}, None) is False


def test_durations_read_like_a_person_writes_them():
    assert [format_duration(s) for s in (4.25, 42, 125, 3725)] == ["4.2 s", "42 s", "2 min 05 s", "1 h 02 min"]
