"""tools/mutation_report.py: a module's score counts killed mutants and the listed
equivalents, and only while a listing still names the change the mutant makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tools.mutation_report import main

MUTATED = """
def x_limit__mutmut_orig(used, asked, limit):
    return used + asked > limit
def x_limit__mutmut_1(used, asked, limit):
    return used - asked > limit
def x_limit__mutmut_2(used, asked, limit):
    return used + asked >= limit
def x_limit__mutmut_3(used, asked, limit):
    return used + asked > limit + 1
def x_limit__mutmut_4(used, asked, limit):
    return used + asked > limit - 1
"""


def a_run(root: Path, exit_codes: dict[int, int | None], equivalents: str) -> None:
    (root / "pyproject.toml").write_text(
        '[tool.mutmut]\nonly_mutate = ["src/pkg/rules.py"]\n', "utf-8"
    )
    mutants = root / "mutants" / "src" / "pkg"
    mutants.mkdir(parents=True)
    (mutants / "rules.py").write_text(MUTATED, "utf-8")
    meta = {
        "exit_code_by_key": {f"pkg.rules.x_limit__mutmut_{n}": c for n, c in exit_codes.items()},
        "durations_by_key": {},
        "estimated_durations_by_key": {},
    }
    (mutants / "rules.py.meta").write_text(json.dumps(meta), "utf-8")
    (root / "tests").mkdir()
    (root / "tests" / "mutation_equivalents.toml").write_text(equivalents, "utf-8")


EQUIVALENT_2 = """
[[equivalent]]
mutant = "pkg.rules.x_limit__mutmut_2"
change = "return used + asked > limit -> return used + asked >= limit"
why = "only for the sake of this test"
"""


def test_listed_equivalents_count_and_a_score_below_the_bar_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_run(tmp_path, {1: 1, 2: 0, 3: 0, 4: 36}, EQUIVALENT_2)
    assert main(["--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "src/pkg/rules.py" in out
    assert " 75.0%" in out  # killed 1, timed out 1, equivalent 1 of 4
    assert "survived: pkg.rules.x_limit__mutmut_3" in out
    assert "...urn used + asked > limit -> ...urn used + asked > limit + 1" in out
    assert "x_limit__mutmut_2" not in out
    assert main(["--root", str(tmp_path), "--threshold", "75"]) == 0


def test_an_equivalent_whose_change_no_longer_matches_counts_against(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_run(tmp_path, {1: 1, 2: 1, 3: 0, 4: 1}, EQUIVALENT_2.replace("_2", "_3"))
    assert main(["--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "survived (listed as equivalent, but it now changes this): " in out
    assert " 75.0%" in out


def test_an_unfinished_or_missing_run_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_run(tmp_path, {1: 1, 2: 1, 3: 1, 4: None}, "")
    assert main(["--root", str(tmp_path), "--threshold", "0"]) == 1
    assert "1 mutants not checked" in capsys.readouterr().out
    (tmp_path / "mutants" / "src" / "pkg" / "rules.py.meta").unlink()
    assert main(["--root", str(tmp_path), "--threshold", "0"]) == 1
    assert "no mutation results" in capsys.readouterr().out


def test_an_equivalent_needs_a_reason(tmp_path: Path) -> None:
    a_run(
        tmp_path,
        {1: 0, 2: 0, 3: 0, 4: 0},
        EQUIVALENT_2.replace("only for", "").replace("the sake of this test", ""),
    )
    with pytest.raises(ValueError, match="no reason"):
        main(["--root", str(tmp_path)])
