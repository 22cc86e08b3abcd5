"""One base for every error a user can see: the CLI reports any PybpfError by its render(), and
treats anything else as a bug."""

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from pybpf.errors import PybpfError

USER_ERRORS = [("pybpf.diagnostics", "CompileError"), ("pybpf.btf", "BtfError"),
               ("pybpf.listing", "ListingError"), ("pybpf.tracefs", "TracefsError"),
               ("pybpf.elfsym", "SymbolError"), ("pybpf.ktypes", "KernelTypeError"),
               ("pybpf.backend.emit", "BackendError"), ("pybpf.runtime.errors", "BpfError"),
               ("pybpf.runtime.errors", "VerifierError"), ("pybpf.runtime.errors", "NotSupportedError"),
               ("pybpf.runtime.errors", "BpfPermissionError"), ("pybpf.program", "ObjectFormatError"),
               ("pybpf.runtime.loader", "ProbeUnavailableError"),
               ("pybpf.printf_format", "PrintfFormatError")]


@pytest.mark.parametrize("module, name", USER_ERRORS)
def test_every_error_a_user_can_see_is_a_pybpf_error_where_it_always_was(module, name):
    assert issubclass(getattr(importlib.import_module(module), name), PybpfError)


def test_the_errors_module_is_a_leaf():
    tree = ast.parse(Path(inspect.getfile(PybpfError)).read_text())
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imported)


def test_render_is_the_whole_report():
    from pybpf.diagnostics import Diagnostics, Span
    from pybpf.runtime.errors import BpfPermissionError
    diags = Diagnostics("BEGIN { foo(); }")
    diags.error("Unknown function: foo", Span(1, 9, 1, 14))
    assert diags.as_error().render() == "stdin:1:9-14: ERROR: Unknown function: foo\nBEGIN { foo(); }\n        ~~~~~"
    assert PybpfError("no such probe").render() == "ERROR: no such probe"
    assert BpfPermissionError("MAP_CREATE", 1).render() == (
        "ERROR: permission denied: pybpf needs root (or CAP_BPF and CAP_PERFMON) to load BPF programs "
        "(MAP_CREATE: Operation not permitted)")


def test_the_cli_reports_a_pybpf_error_by_its_render_and_anything_else_as_a_bug(monkeypatch, capsys):
    from pybpf import cli

    def refuse(opts):
        raise PybpfError("refused")
    monkeypatch.setattr(cli, "_main", refuse)
    assert cli.main(["-e", "BEGIN {}"]) == 1
    assert capsys.readouterr().err == "ERROR: refused\n"

    def crash(opts):
        raise KeyError("bug")
    monkeypatch.setattr(cli, "_main", crash)
    assert cli.main(["-e", "BEGIN {}"]) == 1
    assert capsys.readouterr().err.startswith("ERROR: internal error, please report it")
