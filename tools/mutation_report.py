"""Score each mutated module of `make mutation` and fail below the bar.

mutmut 3 leaves, per mutated file, ``mutants/<path>.meta`` (each mutant's exit code)
and ``mutants/<path>`` (the original function and every mutant of it, side by side).
A module's score is (killed + accepted equivalents) / mutants. A surviving mutant
counts only when ``tests/mutation_equivalents.toml`` lists it with the exact change
it makes and why no test can tell it apart: mutmut numbers mutants in order, so an
edit to a module can give an old number to another change, and then the listing no
longer matches and the survivor counts against the module again.

Usage: python tools/mutation_report.py [--root DIR] [--threshold 90]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Equivalent", "ModuleScore", "load_equivalents", "main", "mutant_change", "score"]

# mutmut's exit codes (mutmut/stats.py): these mean a test (or the time limit, or the
# type checker) told the mutant from the original.
_KILLED = {1, 3, 24, -24, 36, 37, 152, 255}
_NOT_CHECKED = None


@dataclass(frozen=True)
class Equivalent:
    mutant: str
    change: str
    why: str


@dataclass
class ModuleScore:
    path: str
    total: int = 0
    killed: int = 0
    equivalent: int = 0
    not_checked: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, change)
    stale: list[str] = field(default_factory=list)  # listed equivalents that do not match

    @property
    def percent(self) -> float:
        return 100.0 * (self.killed + self.equivalent) / self.total if self.total else 100.0


def load_equivalents(path: Path) -> dict[str, Equivalent]:
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    found: dict[str, Equivalent] = {}
    for entry in data.get("equivalent", []):
        item = Equivalent(entry["mutant"], entry["change"], entry["why"].strip())
        if not item.why:
            raise ValueError(f"{path}: {item.mutant} has no reason")
        found[item.mutant] = item
    return found


def _functions(source: str) -> dict[str, str]:
    tree = ast.parse(source)
    return {
        node.name: ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def mutant_change(functions: dict[str, str], function: str) -> str:
    """What a mutant changes, as 'old line -> new line' (lines stripped, ' | '-joined)."""
    original_name = function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    original = functions[original_name]
    # Named alike, so that only a mutated signature (a default value) differs there.
    mutated = functions[function].replace(function, original_name, 1)
    removed: list[str] = []
    added: list[str] = []
    for line in difflib.ndiff(original.splitlines(), mutated.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:].strip())
        elif line.startswith("+ "):
            added.append(line[2:].strip())
    if len(removed) == 1 and len(added) == 1:
        return _around_the_difference(removed[0], added[0])
    return f"{' | '.join(removed)} -> {' | '.join(added)}"


_CONTEXT = 24  # characters kept either side of what a one-line mutant changes


def _around_the_difference(old: str, new: str) -> str:
    """'old -> new' for one line, cut to the changed part and a little context."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    left = max(0, start - _CONTEXT)

    def cut(line: str) -> str:
        right = min(len(line), len(line) - end + _CONTEXT)
        head = "..." if left > 0 else ""
        tail = "..." if right < len(line) else ""
        return head + line[left:right] + tail

    return f"{cut(old)} -> {cut(new)}"


def _module_name(path: str) -> str:
    relative = Path(path).with_suffix("")
    parts = relative.parts[1:] if relative.parts[0] == "src" else relative.parts
    return ".".join(parts)


def score(root: Path, path: str, equivalents: dict[str, Equivalent]) -> ModuleScore:
    result = ModuleScore(path)
    meta = root / "mutants" / f"{path}.meta"
    if not meta.exists():
        return result
    exit_codes: dict[str, int | None] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    functions = _functions((root / "mutants" / path).read_text("utf-8"))
    prefix = _module_name(path) + "."
    for mutant, code in sorted(exit_codes.items()):
        result.total += 1
        if code is _NOT_CHECKED:
            result.not_checked += 1
        elif code in _KILLED:
            result.killed += 1
        else:
            change = mutant_change(functions, mutant.removeprefix(prefix))
            listed = equivalents.get(mutant)
            if listed is not None and listed.change == change:
                result.equivalent += 1
            else:
                if listed is not None:
                    result.stale.append(mutant)
                result.survivors.append((mutant, change))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--threshold", type=float, default=90.0)
    parser.add_argument("--equivalents", type=Path, default=Path("tests/mutation_equivalents.toml"))
    args = parser.parse_args(argv)
    root: Path = args.root
    pyproject = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    modules: list[str] = pyproject["tool"]["mutmut"]["only_mutate"]
    equivalents = load_equivalents(root / args.equivalents)

    failed = False
    print(f"{'module':<44} {'mutants':>7} {'killed':>6} {'equiv':>5} {'left':>4} {'score':>6}")
    scores = [score(root, path, equivalents) for path in modules]
    for s in scores:
        print(
            f"{s.path:<44} {s.total:>7} {s.killed:>6} {s.equivalent:>5} "
            f"{len(s.survivors):>4} {s.percent:>5.1f}%"
        )
        if s.total == 0 or s.not_checked or s.percent < args.threshold:
            failed = True
    for s in scores:
        if s.total == 0:
            print(f"\n{s.path}: no mutation results (run mutmut first)")
        if s.not_checked:
            print(f"\n{s.path}: {s.not_checked} mutants not checked (the run was cut short)")
        for mutant, change in s.survivors:
            note = " (listed as equivalent, but it now changes this)" if mutant in s.stale else ""
            print(f"survived{note}: {mutant}\n    {change}")
    if failed:
        print(f"\nFAIL: every module needs a score of at least {args.threshold:.0f}%.")
        return 1
    print(f"\nOK: every module scores at least {args.threshold:.0f}%.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
