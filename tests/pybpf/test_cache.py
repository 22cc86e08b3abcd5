"""The compile cache: a hit gives back the same program without importing the compiler's heavy
parts; any change to what shaped the program misses; a damaged entry is compiled again."""

import json
import marshal
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

import pybpf
from pybpf import cache, diskcache
from pybpf.compiler import CompileOptions

SOURCE = 'BEGIN { @x[1] = count(); printf("%d\\n", 5); exit(); }'


def entry_path(source=SOURCE, options=None) -> str:
    key = cache.cache_key(source, options or CompileOptions())
    return os.path.join(diskcache.root(), cache.FOLDER, key + cache.SUFFIX)


def test_hit_returns_the_same_program(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = cache.compile_cached(SOURCE, "stdin", CompileOptions())
    assert os.path.exists(entry_path())
    second = cache.compile_cached(SOURCE, "stdin", CompileOptions())
    assert second.to_data() == first.to_data()


def test_key_covers_source_and_parameters():
    base = cache.cache_key(SOURCE, CompileOptions())
    assert cache.cache_key(SOURCE + " ", CompileOptions()) != base
    assert cache.cache_key(SOURCE, CompileOptions(params=("1",))) != base
    assert cache.cache_key(SOURCE, CompileOptions(map_entries=10)) != base
    assert cache.cache_key(SOURCE, CompileOptions(), "tool.bt") != base      # errorf() prints it
    assert cache.cache_key(SOURCE, CompileOptions()) == base


def test_a_hit_whose_compiled_in_facts_changed_is_compiled_again(tmp_path, monkeypatch):
    # cgroupid() compiles in an inode: the same path recreated is another cgroup (here, a folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cgroup"
    folder.mkdir()
    source = f'BEGIN {{ printf("%d\\n", cgroupid("{folder}")); exit(); }}'
    first = cache.compile_cached(source, "stdin", CompileOptions())
    assert ("inode", str(folder), str(folder.stat().st_ino)) in first.depends_on
    assert cache.compile_cached(source, "stdin", CompileOptions()).to_data() == first.to_data()
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir()             # holds the old inode number while it is recreated
    folder.mkdir()
    again = cache.compile_cached(source, "stdin", CompileOptions())
    assert again.depends_on == (("inode", str(folder), str(folder.stat().st_ino)),)


@pytest.mark.kernel          # kallsyms shows addresses to root only
def test_kaddr_and_uprobe_targets_are_facts_of_this_boot_and_binary(tmp_path, monkeypatch):
    from pybpf import facts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiled = cache.compile_cached('BEGIN { printf("%x\\n", kaddr("do_nanosleep")); exit(); }')
    assert compiled.depends_on == (facts.observe("boot"),)
    uprobe = cache.compile_cached("uprobe:libc:getpid { @ = count(); }")
    [(kind, path, _)] = uprobe.depends_on
    assert kind == "file" and "libc" in path and facts.still_true(uprobe.depends_on)
    assert facts.still_true(compiled.depends_on)
    assert not facts.still_true([("boot", "", "another boot")])
    assert not facts.still_true([("file", str(tmp_path / "gone"), "1:2:3:4")])


def test_hit_imports_neither_lark_nor_llvmlite_nor_the_elf_reader_nor_dataclasses(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    code = ("import json, sys; from pybpf.cache import compile_cached; "
            f"compiled = compile_cached({SOURCE!r}); "
            "print(json.dumps([m in sys.modules for m in ('lark', 'llvmlite', 'elftools', 'dataclasses')]))")
    cold = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    warm = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    assert cold == [True, True, False, True]      # a compile reads its own ELF with struct
    assert warm == [False, False, False, False]


def test_clear_removes_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.compile_cached(SOURCE, "stdin", CompileOptions())
    assert diskcache.clear() == diskcache.Cleared(1, [])
    assert not os.path.exists(diskcache.root())
    assert diskcache.clear() == diskcache.Cleared(0, [])


def test_code_identity_covers_subpackages_and_the_runtime():
    # a uapi constant or a runtime module (which loads and prints what was compiled) may change:
    # objects compiled before must not be reused
    identity = cache._code_identity()
    assert "pybpf/uapi/bpf.py:" in identity and "pybpf.runtime/printf.py:" in identity


def test_code_identity_covers_every_folder_the_package_is_installed_from():
    # a package mapped to a folder of its own in pyproject.toml (as backend/ and runtime/ are) must
    # not be left out of the identity: every module of it shapes or runs compiled programs
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    folders = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    covered = set()
    for entry in cache._code_identity().split("|"):
        package, slash, rest = entry.partition("/")
        if slash and package.startswith("pybpf"):
            (top,) = find_spec(package).submodule_search_locations
            covered.add(os.path.join(top, rest.rsplit(":", 2)[0]))
    for package in folders:
        (top,) = find_spec(package).submodule_search_locations
        for name in os.listdir(top):
            if name.endswith((".py", ".lark")):
                assert os.path.join(top, name) in covered, (package, name)


def copy_of_pybpf(tmp_path):
    """pybpf copied as one tree (as a plain install lays it out); a function that compiles SOURCE
    through the copy in a fresh interpreter and says whether it compiled afresh (a miss)."""
    tree = tmp_path / "site"
    for package in ("pybpf", "pybpf.grammar", "pybpf.backend", "pybpf.runtime"):
        (source,) = find_spec(package).submodule_search_locations
        shutil.copytree(source, tree.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # -S: no site hooks, so the editable install's own finder cannot win over the copy
    packages = os.path.dirname(os.path.dirname(find_spec("lark").origin))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=f"{tree}:{packages}")
    code = ("import json, sys, pybpf; from pybpf.cache import compile_cached; "
            f"compile_cached({SOURCE!r}); print(json.dumps([pybpf.__file__, 'pybpf.parser' in sys.modules]))")

    def compiled_afresh() -> bool:
        out = subprocess.run([sys.executable, "-S", "-c", code], env=env, check=True, capture_output=True,
                             text=True, cwd=tmp_path).stdout
        where, missed = json.loads(out)
        assert where.startswith(str(tree))
        return missed

    return tree, compiled_afresh


def test_editing_a_runtime_module_in_a_copy_misses(tmp_path):
    tree, compiled_afresh = copy_of_pybpf(tmp_path)
    assert compiled_afresh() and not compiled_afresh()
    with open(tree / "pybpf" / "runtime" / "printf.py", "a") as f:
        f.write("\n# edited\n")
    assert compiled_afresh()


def test_an_installed_pybpf_is_identified_by_its_install_record(tmp_path):
    # beside an installed package, pip's RECORD stands for its files: a start stats it alone, and
    # a new install (which rewrites it) misses
    tree, compiled_afresh = copy_of_pybpf(tmp_path)
    info = tree / f"pybpf-{pybpf.__version__}.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("pybpf/__init__.py,,\n")
    assert compiled_afresh() and not compiled_afresh()
    (info / "RECORD").unlink()
    (info / "RECORD").write_text("pybpf/__init__.py,,\npybpf/cli.py,,\n")
    assert compiled_afresh()


def test_damaged_entry_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(diskcache, "settings", diskcache.Settings())
    good = cache.compile_cached(SOURCE, "stdin", CompileOptions()).to_data()
    path = entry_path()
    whole = open(path, "rb").read()
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0x01
    for damaged in (whole[:len(whole) // 2], bytes(flipped), b"", b"{}\n"):
        with open(path, "wb") as f:
            f.write(damaged)
        assert cache.compile_cached(SOURCE, "stdin", CompileOptions()).to_data() == good
        assert open(path, "rb").read() == whole          # removed, compiled, stored again
    assert any("removed a damaged entry objects/" in note for note in diskcache.notes())


def test_a_program_holding_enum_members_is_stored_and_read_back(tmp_path, monkeypatch):
    # a perf event's type and config are IntEnum members (PerfType, PerfSwId): stored as ints
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = "software:page-faults:1 { @[comm] = count(); } hardware:cycles:100000 { @c = count(); }"
    first = cache.compile_cached(source, "stdin", CompileOptions())
    assert os.path.exists(entry_path(source))
    again = cache.compile_cached(source, "stdin", CompileOptions())
    assert again.to_data() == first.to_data() and again.programs == first.programs


def test_an_entry_of_another_format_is_compiled_again(tmp_path, monkeypatch):
    # checksummed as ours, but not a program this version reads (another version's format)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good = cache.compile_cached(SOURCE, "stdin", CompileOptions()).to_data()
    name = os.path.basename(entry_path())
    for other in (b'{"elf": "00"}', marshal.dumps({"elf": "00"}), marshal.dumps([1, 2]), b"\xff"):
        diskcache.write(cache.FOLDER, name, other)
        assert cache.compile_cached(SOURCE, "stdin", CompileOptions()).to_data() == good
        assert cache.load_cached(name.removesuffix(cache.SUFFIX)).to_data() == good     # stored again


def test_unwritable_cache_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert cache.compile_cached(SOURCE, "stdin", CompileOptions()).elf


def test_kernel_identity_covers_the_possible_cpus():
    # ncpus is compiled into the program: a machine rebooted with other CPUs must miss.
    with open("/sys/devices/system/cpu/possible") as f:
        assert cache._kernel_identity().endswith("|" + f.read().strip())


def test_disabled_cache_reads_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.compile_cached(SOURCE, "stdin", CompileOptions())
    monkeypatch.setattr(diskcache, "settings", diskcache.Settings(disabled="--no-cache"))
    before = sorted(p for p in tmp_path.rglob("*"))
    os.unlink(entry_path())
    assert cache.compile_cached(SOURCE, "stdin", CompileOptions()).elf
    assert diskcache.read(cache.FOLDER, "x") is None
    assert sorted(p for p in tmp_path.rglob("*")) == [p for p in before if str(p) != entry_path()]
