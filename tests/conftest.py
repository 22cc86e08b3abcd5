"""Tests marked `kernel` load BPF programs: they skip, with the reason, without root or bpf(2)."""

import functools
import os

import pytest


@functools.cache
def kernel_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import create_map
    from pybpf.runtime.objspec import MapDef
    from pybpf.uapi.bpf import BpfMapType
    try:
        os.close(create_map("probe", MapDef(BpfMapType.ARRAY, 4, 8, 1)))
    except BpfError as e:
        return f"bpf(2) is not usable here: {e}"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") and kernel_unavailable():
        pytest.skip(kernel_unavailable())
