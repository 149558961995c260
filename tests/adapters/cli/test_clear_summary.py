"""`clear` reports this run apart from the store's totals, and --strict fails on rejects."""

from __future__ import annotations

import json
from pathlib import Path

from tests.adapters.cli.test_cli import BAD, GOOD, HEADER, _clear, _csv


def _run(output: str) -> dict[str, object]:
    run: dict[str, object] = json.loads(output)["run"]
    return run


def test_the_summary_counts_this_run_not_the_store(tmp_path: Path) -> None:
    file = _csv(tmp_path, GOOD + BAD)
    first = _clear(tmp_path, file, "--json")
    assert first.exit_code == 0, first.output
    run = _run(first.output)
    assert {k: run[k] for k in ("rows_read", "applied", "duplicates", "conflicts", "rejected")} == {
        "rows_read": 7,
        "applied": 3,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 4,
    }
    assert run["rejects_by_code"] == {
        "bad_decimal": 1,
        "bad_timestamp": 1,
        "precision_exceeded": 1,
        "unknown_participant": 1,
    }
    # The same file again: nothing applied, the good rows are duplicates, the store unchanged.
    again = _clear(tmp_path, file, "--json")
    assert (_run(again.output)["applied"], _run(again.output)["duplicates"]) == (0, 3)
    assert json.loads(again.output)["trades_by_lane"] == json.loads(first.output)["trades_by_lane"]
    # Another file with one known and one new trade.
    other = tmp_path / "more.csv"
    new = "T9,XCL,BTC/USD,MM-ALPHA,BRK-NORTH,0.05,65000,2026-11-20T09:00:05.000Z,EB-2,"
    other.write_text(HEADER + GOOD[0] + "\n" + new + "\n")
    more = _run(_clear(tmp_path, other, "--json").output)
    assert (more["rows_read"], more["applied"], more["duplicates"], more["rejected"]) == (2, 1, 1, 0)


def test_the_table_never_says_none_when_rows_were_rejected(tmp_path: Path) -> None:
    result = _clear(tmp_path, _csv(tmp_path, GOOD + BAD))
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    assert rows["this run: rows read"] == "7"
    assert rows["this run: applied"] == "3"
    assert rows["this run: rejected"].startswith("4 (bad_decimal: 1")
    assert all(value != "none" for key, value in rows.items() if "reject" in key)


def test_strict_exits_non_zero_when_any_row_was_rejected(tmp_path: Path) -> None:
    bad = _clear(tmp_path, _csv(tmp_path, GOOD + BAD), "--strict")
    assert bad.exit_code == 3
    assert "4 rows rejected (--strict)" in " ".join(bad.output.split())
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    good = _clear(clean_dir, _csv(clean_dir, GOOD), "--strict", "--json")
    assert good.exit_code == 0, good.output
    assert _run(good.output)["rejected"] == 0
