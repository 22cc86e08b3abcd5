"""Tests marked `kernel` load BPF programs: they skip, with the reason, without root or bpf(2).
The compile_c fixture builds the C programs that user-space probe tests trace."""

import functools
import os
import shutil
import subprocess

import pytest


@functools.cache
def kernel_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    from pybpf.program import MapDef
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import create_map
    from pybpf.uapi.bpf import BpfMapType
    try:
        os.close(create_map("probe", MapDef(BpfMapType.ARRAY, 4, 8, 1)))
    except BpfError as e:
        return f"bpf(2) is not usable here: {e}"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") and kernel_unavailable():
        pytest.skip(kernel_unavailable())


@pytest.fixture(scope="session")
def compile_c(tmp_path_factory):
    """compile_c(source, *flags) -> the path of the program gcc built from it (skips without a C
    compiler): the tests' own user-space targets."""
    cc = shutil.which("cc") or shutil.which("gcc")

    def build(source: str, *flags: str) -> str:
        if not cc:
            pytest.skip("no C compiler")
        folder = tmp_path_factory.mktemp("cc")
        (folder / "prog.c").write_text(source)
        out = str(folder / "prog")
        subprocess.run([cc, "-O1", "-g0", *flags, "-o", out, str(folder / "prog.c")], check=True)
        return out
    return build
