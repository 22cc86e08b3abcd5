"""Issue #16's first "must show": every option, builtin, function and setting of pybpf has an end-to-end test
against the real kernel, and every one whose `-f json` output is its own (a record, or a value
rendered otherwise than as a number) a JSON test too. docs/coverage.md lists them, one row each with
tests that cover it; this module finds those tests, and checks that the page has a row for each and
that every test it names exists and covers its row (a test added elsewhere leaves it true).

    .venv/bin/python tests/test_surface_coverage.py > docs/coverage.md    # after adding a row

What "covers" means, read from the tests' own text (no test is run here): an end-to-end test
(tests/e2e/test_*.py, a `test_` function) covers a builtin or function when one of its string
constants, or of the module-level constants it names, uses it as a program would (`name(` for a
function, the word for a builtin); an option when one of them is the option itself (`"-q"`); it is
a JSON test when one of them is `"json"` (its `-f json`). The scripts of tests/e2e/golden/ are run
in text and JSON by test_golden.py, those of tests/e2e/language/ in text by test_language.py.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "e2e")
DOC = os.path.join(HERE, os.pardir, "docs", "coverage.md")
GOLDEN_TEST = "test_golden.py::test_output_equals_bpftrace"
LANGUAGE_TEST = "test_language.py::test_case_prints_what_bpftrace_documents"

# Entries whose JSON output is their own: a record type (printf, print, time, join, cat, system,
# errorf, warnf; a map's record for each aggregation), or a value JSON renders as a string or a
# structure where text prints it otherwise (stacks, symbols, formatted values, strings, buffers).
# The others are integers, written the same in both formats wherever a number is.
JSON_RENDERED = {
    "printf", "print", "time", "join", "cat", "system", "errorf", "warnf", "exit",
    "count", "sum", "avg", "min", "max", "stats", "hist", "lhist", "tseries",
    "kstack", "ustack", "ksym", "usym", "strftime", "strerror", "syscall_name", "username",
    "cgroup_path", "ntop", "macaddr", "buf", "str", "comm", "func", "probe", "path",
}
# Options that only change how a run starts or what is printed on stderr: their JSON is the text
# run's. -f is the JSON option itself; -q leaves out a JSON record.
JSON_OPTIONS = {"-f", "-q"}
# What this kernel cannot run (fentry programs are refused under its lockdown): the test checks the
# one-line error, and the function's JSON cannot be seen here.
CANNOT_RUN_HERE = {"path": "fentry only, refused here"}
NO_JSON_TEST = "same as text"


@dataclass
class E2eTest:
    name: str                                  # file.py::test_function
    strings: list[str] = field(default_factory=list)

    @property
    def json(self) -> bool:
        return "json" in self.strings


def _strings(node: ast.AST) -> list[str]:
    """The string constants under node, and the names of keyword arguments (a variable set as
    `dict(os.environ, BPFTRACE_X="1")`)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)] + \
        [n.arg for n in ast.walk(node) if isinstance(n, ast.keyword) and n.arg]


def e2e_tests() -> list[E2eTest]:
    """Every test function of tests/e2e with the strings it uses, and the golden and language
    scripts as the tests that run them."""
    tests = []
    for file in sorted(os.listdir(E2E)):
        if not (file.startswith("test_") and file.endswith(".py")):
            continue
        with open(os.path.join(E2E, file)) as f:
            module = ast.parse(f.read())
        constants = {}
        for node in module.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = _strings(node.value)
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                strings = _strings(node)
                for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
                    strings += constants.get(name, [])
                for decorator in node.decorator_list:       # parametrize's cases
                    strings += _strings(decorator)
                    for name in {n.id for n in ast.walk(decorator) if isinstance(n, ast.Name)}:
                        strings += constants.get(name, [])
                tests.append(E2eTest(f"{file}::{node.name}", strings))
    for folder, test, json in (("golden", GOLDEN_TEST, True), ("language", LANGUAGE_TEST, False)):
        scripts = []
        for name in sorted(os.listdir(os.path.join(E2E, folder))):
            if name.endswith((".bt", ".pbt")):
                with open(os.path.join(E2E, folder, name)) as f:
                    scripts.append(f.read())
        tests.append(E2eTest(test, scripts + (["json"] if json else [])))
    return tests


def _use(kind: str, name: str) -> re.Pattern:
    """How a program uses a builtin (the word) or function (`name(`), argN and sargN by pattern;
    how a run sets a setting (its environment variable, or its name in a config block)."""
    if kind == "environment":
        return re.compile(rf"^{name}$")
    if kind == "setting":
        from pybpf.settings import SETTINGS

        names = (SETTINGS[name].env,) + SETTINGS[name].old_env + (name,)
        return re.compile("|".join(rf"^{n}$|{n}=" for n in names) + rf"|config = {{[^}}]*\b{name}\b")
    word = {"argN": r"arg\d+", "sargN": r"sarg\d+"}.get(name, re.escape(name))
    if kind == "function":
        return re.compile(rf"(?<![\w@$.]){word}\s*\(")
    return re.compile(rf"(?<![\w@$.\-]){word}(?![\w(])")


def surface() -> list[tuple[str, str]]:
    """(kind, name) of every option, builtin, function and aggregation pybpf has, and every
    setting (BPFTRACE_* variable) it implements."""
    from pybpf import builtins
    from pybpf.cli import _parser
    from pybpf.settings import COMMAND_ENVIRONMENT, SETTINGS

    rows = []
    for action in _parser()._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                rows.append(("option", option))
    rows += [("builtin", name) for name in sorted(builtins.IDENTIFIERS)]
    rows += [("builtin", entry.name) for entry in builtins.PATTERNS]
    rows += [("function", name) for name in sorted(builtins.FUNCTIONS)]
    rows += [("function", name) for name in sorted(builtins.AGGREGATIONS)]
    rows += [("setting", name) for name, s in SETTINGS.items() if s.implemented]
    rows += [("environment", name) for name in COMMAND_ENVIRONMENT]
    return rows


def covering(kind: str, name: str, tests: list[E2eTest]) -> tuple[list[str], list[str]]:
    """The tests that use `name`, and those of them that check JSON."""
    if kind == "option":
        found = [t for t in tests if name in t.strings or
                 any(s.startswith(name + "=") for s in t.strings)]
    else:
        use = _use(kind, name)
        found = [t for t in tests if any(use.search(s) for s in t.strings)]
    return [t.name for t in found], [t.name for t in found if t.json]


def needs_json(kind: str, name: str) -> bool:
    if kind in ("setting", "environment"):
        return False        # a setting changes what runs, not how a record is written
    return name in (JSON_OPTIONS if kind == "option" else JSON_RENDERED) and name not in CANNOT_RUN_HERE


def render(tests: list[E2eTest], most: int = 2) -> str:
    lines = [
        "# What the end-to-end tests cover",
        "",
        "Every option, builtin, function and setting (`BPFTRACE_*` variable) pybpf implements, with",
        "end-to-end tests that run it against the real kernel on events the test causes (two named",
        "where there are more), and the ones among them that check its `-f json` output where that",
        "output is its own (\"same as text\": its JSON is a number, or it changes nothing in the",
        "JSON). Written by `tests/test_surface_coverage.py` (run as a script), whose tests fail when",
        "pybpf has one without a row here, or a test named here does not exist or does not use its",
        "row's name. bpftrace 0.26's options pybpf does not have: [cli.md](cli.md) (Not done yet);",
        "the settings pybpf accepts without acting on them: [language.md](language.md) (Config block).",
        "",
        "| kind | name | tests (text) | tests (-f json) |",
        "|---|---|---|---|",
    ]
    for kind, name in surface():
        text, json = covering(kind, name, tests)
        json_column = _names(json, most) if needs_json(kind, name) else \
            CANNOT_RUN_HERE.get(name, NO_JSON_TEST)
        lines.append(f"| {kind} | `{name}` | {_names(text, most)} | {json_column} |")
    return "\n".join(lines) + "\n"


def _names(found: list[str], most: int) -> str:
    return ", ".join(found[:most]) or "**none**"


def page_rows() -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """docs/coverage.md's rows: (kind, name) -> (the text tests, the JSON tests) it names."""
    rows = {}
    with open(DOC) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 4 and cells[1].startswith("`"):
                names = [[t for t in c.split(", ") if "::" in t] for c in cells[2:]]
                rows[(cells[0], cells[1].strip("`"))] = (names[0], names[1])
    return rows


def test_every_option_builtin_and_function_has_an_end_to_end_test():
    tests = e2e_tests()
    missing = [f"{kind} {name}" for kind, name in surface() if not covering(kind, name, tests)[0]]
    assert missing == []


def test_every_one_with_its_own_json_output_has_a_json_test():
    tests = e2e_tests()
    missing = [f"{kind} {name}" for kind, name in surface()
               if needs_json(kind, name) and not covering(kind, name, tests)[1]]
    assert missing == []


def test_the_coverage_page_has_a_row_for_each_and_names_tests_that_cover_it():
    tests = e2e_tests()
    rows = page_rows()
    assert sorted(rows) == sorted(surface()), \
        "rewrite it: .venv/bin/python tests/test_surface_coverage.py > docs/coverage.md"
    for (kind, name), (text, json) in rows.items():
        found, found_json = covering(kind, name, tests)
        assert text and set(text) <= set(found), (kind, name, text)
        assert set(json) <= set(found_json), (kind, name, json)
        assert bool(json) == needs_json(kind, name), (kind, name, json)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, os.pardir))
    sys.stdout.write(render(e2e_tests()))
