"""pybpf.elfsym against real binaries here: libc, bash, this Python, and a C program compiled by the test."""

import os
import shutil
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile

from pybpf import elfsym
from pybpf.elfsym import SymbolError

C_SOURCE = r"""
static int hidden(int x) { return x + 3; }
__attribute__((noinline)) int visible(int x) { __asm__ volatile(""); return hidden(x) * 2; }
int counter;
int main(int argc, char **argv) { (void)argv; counter = visible(argc); return 0; }
"""


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def c_binary(request, compile_c):
    return compile_c(C_SOURCE, f"-{request.param}")


def test_absolute_path_is_taken_as_it_is():
    assert elfsym.find_binary("/usr/bin/env") == "/usr/bin/env"


def test_program_on_path():
    assert elfsym.find_binary("env") == shutil.which("env")


@pytest.mark.parametrize("name", ["libc", "libc.so", "libc.so.6"])
def test_library_names(name):
    path = elfsym.find_binary(name)
    assert os.path.basename(path) == "libc.so.6" and os.path.isabs(path)


def test_library_found_without_ldconfig(monkeypatch):
    monkeypatch.setattr(elfsym, "_ldconfig_cache", [])
    assert os.path.basename(elfsym.find_binary("libc")) == "libc.so.6"


@pytest.mark.parametrize("name", ["nosuchbinary_xyz", "/no/such/file", "libnosuchlib_xyz"])
def test_missing_binary(name):
    with pytest.raises(SymbolError, match=f"binary not found: {name}"):
        elfsym.find_binary(name)


def test_libc_getpid():
    libc = elfsym.find_binary("libc")
    vaddr, size = elfsym.function_symbols(libc)["getpid"]
    assert vaddr > 0 and size > 0
    assert elfsym.uprobe_offset(libc, "getpid") == elfsym.file_offset(libc, vaddr)


def test_symbols_are_memoized_per_mtime():
    libc = elfsym.find_binary("libc")
    assert elfsym.function_symbols(libc) is elfsym.function_symbols(libc)


def test_only_functions_and_only_defined_ones():
    libc = elfsym.find_binary("libc")
    symbols = elfsym.function_symbols(libc)
    assert "environ" not in symbols and "stdout" not in symbols       # objects, not functions
    bash = "/usr/bin/bash"
    if not os.path.exists(bash):
        pytest.skip("no bash")
    assert "getpid" not in elfsym.function_symbols(bash)                # imported from libc: undefined


def test_gnu_ifunc_is_a_function():
    libc = elfsym.find_binary("libc")
    assert "memcpy" in elfsym.function_symbols(libc)                    # an IFUNC in glibc


def test_bash_readline():
    if not os.path.exists("/usr/bin/bash"):
        pytest.skip("no bash")
    symbols = elfsym.function_symbols("/usr/bin/bash")
    if "readline" not in symbols:
        pytest.skip("this bash has no readline symbol")
    assert symbols["readline"][1] > 0


def test_python_executable():
    symbols = elfsym.function_symbols(os.path.realpath(sys.executable))
    assert "main" in symbols or "Py_BytesMain" in symbols


def test_compiled_binary_symbols_and_offsets(c_binary):
    symbols = elfsym.function_symbols(c_binary)
    assert {"main", "visible"} <= set(symbols)
    assert "counter" not in symbols
    vaddr, size = symbols["visible"]
    with open(c_binary, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        expected = vaddr - text["sh_addr"] + text["sh_offset"]
    assert elfsym.file_offset(c_binary, vaddr) == expected
    if c_binary.endswith("no-pie"):
        assert vaddr >= 0x400000 and expected < 0x400000                # the conversion matters here
    assert elfsym.uprobe_offset(c_binary, "visible", 1) == expected + 1
    assert elfsym.uprobe_offset(c_binary, hex(vaddr)) == expected
    with pytest.raises(SymbolError, match="outside function 'visible'"):
        elfsym.uprobe_offset(c_binary, "visible", size)


def test_missing_function_message(c_binary):
    with pytest.raises(SymbolError, match=f"no function 'nosuch' in {c_binary}"):
        elfsym.uprobe_offset(c_binary, "nosuch")


def test_address_outside_segments(c_binary):
    with pytest.raises(SymbolError, match="in no loadable segment"):
        elfsym.file_offset(c_binary, 0xFFFF_FFFF_0000)


def test_not_an_elf(tmp_path):
    p = tmp_path / "x"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(SymbolError, match="not an ELF binary"):
        elfsym.function_symbols(str(p))


@pytest.mark.parametrize("target,expected", [
    ("/usr/bin/bash:readline", ("/usr/bin/bash", "readline", 0)),
    ("/usr/bin/bash:readline+16", ("/usr/bin/bash", "readline", 16)),
    ("libc:getpid+0x8", ("libc", "getpid", 8)),
])
def test_parse_target(target, expected):
    assert elfsym.parse_uprobe_target(target) == expected


@pytest.mark.parametrize("target", ["nocolon", ":func", "/bin/x:", "/bin/x:f+zz"])
def test_parse_bad_target(target):
    with pytest.raises(SymbolError):
        elfsym.parse_uprobe_target(target)


def test_list_uprobes(c_binary):
    assert elfsym.list_uprobes(f"{c_binary}:vis*") == [f"uprobe:{c_binary}:visible"]
    assert f"uretprobe:{c_binary}:main" in elfsym.list_uprobes(c_binary, "uretprobe")
    libc = elfsym.find_binary("libc")
    assert f"uprobe:{libc}:getpid" in elfsym.list_uprobes("libc:getpi*")


def test_listing_lists_and_describes_uprobes(c_binary):
    from pybpf.listing import ListingError, describe_probe, list_probes
    assert list_probes(f"u:{c_binary}:vis*") == [f"uprobe:{c_binary}:visible"]
    assert list_probes(f"uretprobe:{c_binary}:main") == [f"uretprobe:{c_binary}:main"]
    assert describe_probe(f"uprobe:{c_binary}:visible") == []
    with pytest.raises(ListingError, match="binary not found: /no/such"):
        list_probes("uprobe:/no/such:*")


@pytest.mark.parametrize("probe, message", [
    ("uprobe:libc:pybpf_no_such_function", "no function 'pybpf_no_such_function' in "),
    ("uprobe:libc:getpid+100000", "offset 100000 is outside function 'getpid' in "),
    ("uprobe:libc:getpid+zz", "bad uprobe offset in 'libc:getpid+zz': 'zz'"),
    ("uretprobe:libc:getpid+4", "an offset (+N) is only valid on uprobe"),
])
def test_the_compiler_checks_uprobe_targets_with_the_same_reader(probe, message):
    from pybpf.compiler import compile_to_ir
    from pybpf.diagnostics import CompileError
    with pytest.raises(CompileError) as e:
        compile_to_ir(probe + " { }")
    assert message in str(e.value)


def test_cpp_names_answer_demangled(cpp_app):
    symbols = elfsym.function_symbols(cpp_app)
    assert symbols["ns::add(int, int)"] == symbols["_ZN2ns3addEii"]
    assert "ns::add(double, double)" in symbols and "ns::Counter::bump(long)" in symbols
    # one name per address, the demangled one
    assert elfsym.matching_functions(cpp_app, "*add*") == ["ns::add(double, double)", "ns::add(int, int)"]


def test_aliases_of_one_address_probe_once():
    libc = elfsym.find_binary("libc")
    symbols = elfsym.function_symbols(libc)
    if symbols.get("__getpid") != symbols["getpid"]:
        pytest.skip("this libc has no __getpid alias")
    matched = elfsym.matching_functions(libc, "*getpid")
    assert "getpid" in matched and "__getpid" not in matched


def test_addresses_are_checked_to_be_in_a_function(c_binary):
    vaddr, size = elfsym.function_symbols(c_binary)["visible"]
    assert elfsym.uprobe_offset(c_binary, str(vaddr + 1)) == elfsym.file_offset(c_binary, vaddr + 1)
    data = elfsym.symbol_address(c_binary, "counter")
    with pytest.raises(SymbolError, match=f"address {data:#x} is not inside any function of {c_binary}"):
        elfsym.uprobe_offset(c_binary, hex(data))


def test_a_stripped_binary(c_binary, tmp_path):
    if not shutil.which("strip"):
        pytest.skip("no strip (binutils)")
    stripped = tmp_path / "stripped"
    shutil.copy(c_binary, stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    with pytest.raises(SymbolError, match=f"no function 'visible' in {stripped} .it has no symbol table"):
        elfsym.uprobe_offset(str(stripped), "visible")
    vaddr, _ = elfsym.function_symbols(c_binary)["visible"]
    assert elfsym.uprobe_offset(str(stripped), hex(vaddr)) == elfsym.file_offset(c_binary, vaddr)
    data = elfsym.symbol_address(c_binary, "counter")
    with pytest.raises(SymbolError, match="is not in the code of"):
        elfsym.uprobe_offset(str(stripped), hex(data))


def test_minidebuginfo_symbols_and_its_bound(c_binary, tmp_path, strip_to_minidebuginfo,
                                            monkeypatch):
    """A binary whose only symbols are in .gnu_debugdata has all its functions back; a section that decompresses past the bound gives none (the binary reads as stripped)."""
    mini = str(tmp_path / "mini")
    shutil.copy(c_binary, mini)
    strip_to_minidebuginfo(mini)
    assert elfsym.function_symbols(mini) == elfsym.function_symbols(c_binary)
    monkeypatch.setattr(elfsym, "MAX_DEBUGDATA_BYTES", 1024)
    monkeypatch.setattr(elfsym, "_symbols_cache", {})
    assert "visible" not in elfsym.function_symbols(mini)


@pytest.mark.parametrize("target,expected", [
    ("/app:ns::add(int, int)", ("/app", "ns::add(int, int)", 0)),
    ("/app:ns::add(int, int)+4", ("/app", "ns::add(int, int)", 4)),
    ("/app:ns::V::operator+(ns::V const&)", ("/app", "ns::V::operator+(ns::V const&)", 0)),
    ("/app:operator+=", ("/app", "operator+=", 0)),
    ("/app:0x401136", ("/app", "0x401136", 0)),
])
def test_parse_cpp_and_address_targets(target, expected):
    assert elfsym.parse_uprobe_target(target) == expected
