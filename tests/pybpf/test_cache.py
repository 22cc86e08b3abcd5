"""The compile cache: a hit gives back the same program without importing the compiler's heavy
parts; any change to what shaped the program misses."""

import json
import os
import subprocess
import sys

from pybpf import cache
from pybpf.compiler import CompileOptions

SOURCE = 'BEGIN { @x[1] = count(); printf("%d\\n", 5); exit(); }'


def test_hit_returns_the_same_program(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = cache.compile_cached(SOURCE, "stdin", CompileOptions())
    key = cache.cache_key(SOURCE, CompileOptions())
    assert os.path.exists(os.path.join(cache.cache_dir(), key + ".json"))
    second = cache.compile_cached(SOURCE, "stdin", CompileOptions())
    assert second.to_json() == first.to_json()


def test_key_covers_source_and_parameters():
    base = cache.cache_key(SOURCE, CompileOptions())
    assert cache.cache_key(SOURCE + " ", CompileOptions()) != base
    assert cache.cache_key(SOURCE, CompileOptions(params=("1",))) != base
    assert cache.cache_key(SOURCE, CompileOptions(map_entries=10)) != base
    assert cache.cache_key(SOURCE, CompileOptions()) == base


def test_hit_imports_neither_lark_nor_llvmlite(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    probe = ("import sys; from pybpf.cache import compile_cached; "
             f"compile_cached({SOURCE!r}); "
             "print(json.dumps(['lark' in sys.modules, 'llvmlite' in sys.modules]))")
    code = "import json; " + probe
    cold = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    warm = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    assert cold == [True, True]
    assert warm == [False, False]


def test_clear_removes_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.compile_cached(SOURCE, "stdin", CompileOptions())
    cache.write_atomically(cache.cache_path("specs", "x.json"), b"{}")     # the parsed-object memo
    assert cache.clear() == 1
    assert not os.path.exists(cache.cache_path())
    assert cache.clear() == 0


def test_code_identity_covers_subpackages():
    # a change to a uapi constant must not reuse objects compiled before it
    assert "uapi/bpf.py:" in cache._code_identity()


def test_unwritable_cache_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert cache.compile_cached(SOURCE, "stdin", CompileOptions()).elf


def test_kernel_identity_covers_the_possible_cpus():
    # ncpus is compiled into the program: a machine rebooted with other CPUs must miss.
    with open("/sys/devices/system/cpu/possible") as f:
        assert cache._kernel_identity().endswith("|" + f.read().strip())
