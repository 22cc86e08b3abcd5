"""BPFTRACE_BTF (bpftrace 0.26): the kernel's types from that BTF file instead of
/sys/kernel/btf/vmlinux; pybpf runs as root, so a file another user could have written is refused
in one line, as an unreadable or invalid one is."""

import os

import pytest

from e2e_helpers import run_pybpf
from pybpf.clayout import BTF_KIND_STRUCT, Layout, Type

BTF_VARIABLE = "BPFTRACE_BTF"
SIZEOF = 'BEGIN { printf("%d\\n", sizeof(struct pybpf_btf_only)); exit(); }'


def small_btf() -> bytes:
    """BTF of one struct the kernel does not have: struct pybpf_btf_only { int a; int b; int c; }."""
    layout = Layout(None)
    integer = layout.int_type("int", 4, True)
    struct_id = layout.add(Type(BTF_KIND_STRUCT, "pybpf_btf_only"), 4)
    layout.record(struct_id, [(name, integer, None, None) for name in "abc"], False, 0)
    return layout.encode()


@pytest.mark.kernel
def test_btf_file_gives_the_types(tmp_path):
    path = tmp_path / "types.btf"
    path.write_bytes(small_btf())
    os.chmod(path, 0o644)
    r = run_pybpf(["-q", "-e", SIZEOF], env=dict(os.environ, **{BTF_VARIABLE: str(path)}))
    assert (r.returncode, r.stdout.split()) == (0, ["12"]), r.stderr
    r = run_pybpf(["-q", "-e", SIZEOF])                     # the kernel's BTF has no such struct
    assert r.returncode == 1 and "pybpf_btf_only" in r.stderr


@pytest.mark.kernel
def test_untrusted_unreadable_or_invalid_btf_file_is_one_error_line(tmp_path):
    writable = tmp_path / "writable.btf"
    writable.write_bytes(small_btf())
    os.chmod(writable, 0o666)
    invalid = tmp_path / "invalid.btf"
    invalid.write_bytes(b"not BTF at all, but long enough for a header")
    os.chmod(invalid, 0o644)
    for path, reason in ((writable, "is writable by its group or by others"),
                         (tmp_path / "missing.btf", "No such file or directory"),
                         (invalid, "not BTF data")):
        r = run_pybpf(["-e", SIZEOF], env=dict(os.environ, **{BTF_VARIABLE: str(path)}))
        assert r.returncode == 1 and r.stdout == "", r.stdout
        assert r.stderr.startswith("ERROR: BPFTRACE_BTF: ") and reason in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1, r.stderr
