"""The builtins registry: one entry per name, and a front end that type-checks through it without
loading LLVM."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from pybpf import builtins
from pybpf.builtins.entry import Aggregation, Kind
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError


def test_each_name_has_one_entry():
    identifiers = Counter(e.name for e in builtins.ENTRIES
                          if not isinstance(e, Aggregation) and e.kind is Kind.IDENTIFIER)
    calls = Counter(e.name for e in builtins.ENTRIES
                    if isinstance(e, Aggregation) or e.kind is Kind.FUNCTION)
    assert [n for n, k in identifiers.items() if k > 1] == []
    assert [n for n, k in calls.items() if k > 1] == []


def test_lookups():
    assert builtins.identifier("pid").name == "pid"
    assert builtins.identifier("arg3").name == "argN"
    assert builtins.identifier("argv") is None
    assert builtins.identifier("str") is None          # a function, not an identifier
    assert builtins.function("str").arity == (1, 2)
    assert builtins.function("count") is None
    assert builtins.aggregation("lhist").arity == 4


def test_every_entry_that_can_be_a_value_lowers():
    unlowered = [e.name for e in builtins.ENTRIES
                 if not isinstance(e, Aggregation) and e.lower is None]
    assert unlowered == []


def test_type_checking_imports_neither_llvmlite_nor_the_backend():
    code = ("import json, sys; from pybpf.compiler import CompileOptions, _front_end, StageTimes; "
            "_front_end('BEGIN { printf(\"%s %d\\\\n\", str(comm, 4), pid); @[cpu] = hist(nsecs); "
            "exit(); }', 'stdin', CompileOptions(), StageTimes()); "
            "print(json.dumps(['llvmlite' in sys.modules, 'pybpf.backend' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [False, False]


def test_count_cpus_reads_sysfs_cpu_lists():
    from pybpf.cpus import parse_cpu_list
    assert len(parse_cpu_list("0\n")) == 1
    assert len(parse_cpu_list("0-1\n")) == 2
    assert len(parse_cpu_list("0-3,6,8-9\n")) == 7
    assert parse_cpu_list("0-1,4-5\n") == (0, 1, 4, 5)      # 4 CPUs, 6 per-CPU slots


def test_usermode_needs_the_interrupted_registers():
    with pytest.raises(CompileError) as err:
        compile_to_ir("BEGIN { printf(\"%d\\n\", usermode); }")
    assert "The usermode builtin can only be used with kprobe, uprobe, profile and interval " \
        "probes" in str(err.value)

