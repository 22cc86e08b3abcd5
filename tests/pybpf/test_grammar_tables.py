"""The parser's tables (pybpf.grammar.tables): built and stored as JSON, pybpf.lalr parses with
them as Lark's own parser does (tests/pybpf/test_lalr.py); an installed package's tables are used
only when they are this grammar's, in this layout; the build step (setup.py) writes them into the
built package."""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from pybpf import lalr, parser
from pybpf.errors import PybpfError
from pybpf.grammar import tables

SOURCE = ('tracepoint:syscalls:sys_enter_openat /pid > 1/ { @[comm, str(args->filename)] = count(); '
          'if ($x) { printf("%d\\n", 1 + 2 * 3); } }')


@functools.cache
def _grammar() -> str:
    with open(tables.GRAMMAR) as f:
        return f.read()


def _name(grammar: str) -> str:
    return tables.name(grammar, hashlib.sha256)


def test_tables_built_afresh_parse_as_the_parser_in_use():
    built = lalr.Parser(json.loads(tables.build(_grammar()))["lalr"])
    assert repr(built.parse(SOURCE, parser._ToAst())) == repr(parser.parse(SOURCE))


def test_shipped_tables_are_used_only_under_their_own_name(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "SHIPPED", str(tmp_path / "pbt-tables.json"))
    assert tables.shipped("x.json") is None                          # none installed (a checkout)
    tables.write_shipped(str(tmp_path))
    assert tables.shipped(_name(_grammar())) is not None
    assert tables.shipped(_name(_grammar() + "\n")) is None                     # another grammar
    old_format = tables.FORMAT
    tables.FORMAT = "pybpf.lalr 0"
    try:
        assert tables.shipped(_name(_grammar())) is None                        # another layout
    finally:
        tables.FORMAT = old_format


def test_the_parser_starts_from_shipped_tables_without_building(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "SHIPPED", str(tmp_path / "pbt-tables.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    tables.write_shipped(str(tmp_path))
    monkeypatch.setattr(tables, "build", lambda grammar: (_ for _ in ()).throw(AssertionError("built")))
    parser._parser.cache_clear()
    try:
        assert parser.parse(SOURCE, "stdin").probes
    finally:
        parser._parser.cache_clear()


def test_shipped_tables_another_user_could_have_written_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "SHIPPED", str(tmp_path / "pbt-tables.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    tables.write_shipped(str(tmp_path))
    os.chmod(tables.SHIPPED, 0o666)
    parser._parser.cache_clear()
    try:
        with pytest.raises(PybpfError, match=r"not reading pybpf's pbt-tables.json: .* is writable by its "
                                             r"group or by others \(mode 666\)"):
            parser.parse(SOURCE, "stdin")
    finally:
        parser._parser.cache_clear()


def test_the_build_step_ships_the_tables(tmp_path):
    # a copy of the checkout: setup.py's egg_info step writes beside pyproject.toml
    root, source = os.path.dirname(os.path.dirname(tables.GRAMMAR)), tmp_path / "source"
    for name in ("pybpf", "backend", "runtime", "grammar"):
        shutil.copytree(os.path.join(root, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(root, name), source / name)
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path / "lib")],
                   cwd=source, check=True, capture_output=True, timeout=120)
    with open(tmp_path / "lib" / "pybpf" / "grammar" / "pbt-tables.json", "rb") as f:
        blob = f.read()
    assert blob.startswith(b'{"name":"' + _name(_grammar()).encode())
