"""Root never runs or loads a cache file another user could have written (issue 13; docs/security.md).

Each test plants what an attacker with a local account would: a pickle under the grammar cache's
old name, a compiled object of another program under the real key of the one root runs, a BTF
index with struct layouts swapped, symlinks, a group-writable folder. The planted files belong to
uid 65534 (nobody), as files written by the user's own processes would belong to the user; the
runs keep HOME/XDG_CACHE_HOME pointing at them, as `sudo -E` and `su` do."""

import glob
import os
import pickle
import shutil
import subprocess
import sys

import pytest

from pybpf import cache
from pybpf.compiler import CompileOptions

PYBPF = [sys.executable, "-m", "pybpf.cli"]
OTHER_UID = 65534
HELLO = 'BEGIN { printf("hello\\n"); exit(); }'
PLANTED = 'BEGIN { printf("planted\\n"); exit(); }'
EXPECTED = "Attaching 1 probe...\nhello\n\n\n"      # bpftrace ends a run with two blank lines

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs as root, plants files of another uid")


class RunsCode:
    """Unpickling this runs `touch marker`: what Lark's cache= file would do as root."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_pickle(marker) -> bytes:
    # Lark's cache file: a hash line, then pickles; it unpickles before comparing the hash
    return b"0" * 64 + b"\n" + pickle.dumps(RunsCode(str(marker)))


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(PYBPF + list(args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, cwd="/")


def compiled_entry(source: str, tmp_path, monkeypatch) -> bytes:
    """The compile cache's entry for `source`, as pybpf itself writes it (checksum and all)."""
    with monkeypatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "scratch"))
        cache.compile_cached(source)
        (path,) = glob.glob(str(tmp_path / "scratch" / "**" / "objects" / f"*{cache.SUFFIX}"), recursive=True)
        with open(path, "rb") as f:
            return f.read()


def hello_entry_name() -> str:
    return cache.cache_key(HELLO, CompileOptions()) + cache.SUFFIX    # anyone can compute it


def users_home(tmp_path) -> tuple:
    """(home, its cache folder ~/.cache/pybpf), created; chown_all() gives them to the user."""
    home = tmp_path / "home"
    folder = home / ".cache" / "pybpf"
    (folder / "objects").mkdir(parents=True)
    return home, folder


def chown_all(top) -> None:
    for folder, subfolders, names in os.walk(top):
        for path in [folder] + [os.path.join(folder, n) for n in subfolders + names]:
            os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)


def sudo_e(home) -> dict:
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


@pytest.mark.kernel
def test_pickle_under_the_old_grammar_cache_name_is_never_loaded(tmp_path):
    home, folder = users_home(tmp_path)
    marker = tmp_path / "ran-as-root"
    (folder / "grammar.lark.cache").write_bytes(evil_pickle(marker))
    chown_all(home)
    done = run(sudo_e(home), "-v", "-e", HELLO)
    assert done.returncode == 0 and done.stdout == EXPECTED
    assert not marker.exists()
    (why,) = [line for line in done.stderr.splitlines() if line.startswith("cache:")]
    assert why.startswith(f"cache: not used: {home} is owned by uid {OTHER_UID}, not by uid 0 or root")
    assert "sudo -E" in why


@pytest.mark.kernel
def test_planted_object_under_the_real_key_is_never_loaded(tmp_path, monkeypatch):
    home, folder = users_home(tmp_path)
    (folder / "objects" / hello_entry_name()).write_bytes(compiled_entry(PLANTED, tmp_path, monkeypatch))
    chown_all(home)
    done = run(sudo_e(home), "-e", HELLO)
    assert done.returncode == 0 and done.stdout == EXPECTED


@pytest.mark.kernel
def test_read_only_home_puts_no_cache_in_the_shared_temp_folder(tmp_path):
    home, shared_tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    shared_tmp.mkdir()
    marker = tmp_path / "ran-as-root"
    (shared_tmp / "pybpf-grammar.lark.cache").write_bytes(evil_pickle(marker))   # the old fallback
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,mode=755,size=64k", "tmpfs", str(home)]).returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        done = run({"HOME": str(home), "XDG_CACHE_HOME": "", "TMPDIR": str(shared_tmp)}, "-v", "-e", HELLO)
    finally:
        subprocess.run(["umount", str(home)], check=True)
    assert done.returncode == 0 and done.stdout == EXPECTED
    assert not marker.exists()
    assert os.listdir(shared_tmp) == ["pybpf-grammar.lark.cache"]
    notes = [line for line in done.stderr.splitlines() if line.startswith("cache:")]
    assert notes and all("Read-only file system" in line for line in notes)


@pytest.mark.kernel
def test_symlinks_in_place_of_entries_and_folders_are_not_followed(tmp_path, monkeypatch):
    root_cache = tmp_path / "xdg" / "pybpf"      # root's own cache, with links in it
    planted = compiled_entry(PLANTED, tmp_path, monkeypatch)
    (root_cache / "objects").mkdir(parents=True, mode=0o700)
    os.chmod(root_cache, 0o700)
    elsewhere = tmp_path / "valid-entry"
    elsewhere.write_bytes(planted)
    os.symlink(elsewhere, root_cache / "objects" / hello_entry_name())
    root_only = tmp_path / "root-only"
    root_only.write_bytes(b"root's own data\n")
    os.symlink(root_only, root_cache / "grammar.lark.cache")      # where Lark used to write
    os.symlink(root_only, root_cache / "grammar")                  # the parser tables' folder
    done = run({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, "-e", HELLO)
    assert done.returncode == 0 and done.stdout == EXPECTED
    assert elsewhere.read_bytes() == planted and root_only.read_bytes() == b"root's own data\n"
    assert not os.path.islink(root_cache / "objects" / hello_entry_name())   # replaced, not followed

    shutil.rmtree(root_cache / "objects")
    folder_elsewhere = tmp_path / "folder-elsewhere"
    folder_elsewhere.mkdir(mode=0o700)
    (folder_elsewhere / hello_entry_name()).write_bytes(planted)
    os.symlink(folder_elsewhere, root_cache / "objects")
    done = run({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, "-e", HELLO)
    assert done.returncode == 0 and done.stdout == EXPECTED
    assert os.listdir(folder_elsewhere) == [hello_entry_name()]


@pytest.mark.kernel
def test_group_writable_folder_is_not_trusted(tmp_path, monkeypatch):
    objects = tmp_path / "xdg" / "pybpf" / "objects"
    objects.mkdir(parents=True)
    os.chmod(objects.parent, 0o700)
    os.chmod(objects, 0o770)             # a group member could have put the entry there
    (objects / hello_entry_name()).write_bytes(compiled_entry(PLANTED, tmp_path, monkeypatch))
    done = run({"XDG_CACHE_HOME": str(tmp_path / "xdg")}, "-e", HELLO)
    assert done.returncode == 0 and done.stdout == EXPECTED


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="needs /sys/kernel/btf/vmlinux")
def test_planted_btf_index_cannot_swap_struct_layouts(tmp_path, monkeypatch):
    from pybpf import diskcache
    from pybpf.btf import VMLINUX, Btf

    monkeypatch.setattr(diskcache, "settings", diskcache.Settings())
    monkeypatch.setattr(Btf, "_walk_in_kernel", lambda self, hash_names: None)      # the Python walk is cached
    home, folder = users_home(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "root-cache"))
    honest = Btf.load(VMLINUX)
    task, file = honest.find("task_struct", "struct"), honest.find("file", "struct")
    # the attack: the same index with task_struct's entry pointing at struct file's type record
    index = bytearray(diskcache.read("btf", os.path.basename(honest.cache_file)))
    offsets_at = 64 + 4 * (task.id - honest.start_id)
    index[offsets_at:offsets_at + 4] = index[64 + 4 * (file.id - honest.start_id):][:4]
    diskcache.write("btf", os.path.basename(honest.cache_file), bytes(index))
    tampered = Btf.load(VMLINUX)
    assert tampered.cache_hit and tampered.type(task.id).size == file.size    # it would matter

    shutil.move(str(tmp_path / "root-cache" / "pybpf" / "btf"), str(folder / "btf"))
    chown_all(home)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    btf = Btf.load(VMLINUX)
    assert not btf.cache_hit
    assert btf.type(task.id).size == task.size and btf.find("task_struct", "struct") == task


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_no_cache_reads_no_cache_at_all(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONDONTWRITEBYTECODE": "1"}
    program = "fentry:vfs_read { @[comm] = count(); }"       # the compiler reads BTF for it
    assert run(env, "--emit", "llvm", "-e", program).returncode == 0        # a warm cache
    trace = tmp_path / "trace"
    done = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=%file"] + PYBPF
                          + ["--no-cache", "--emit", "llvm", "-e", program],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **env}, cwd="/")
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "xdg") not in trace.read_text()
