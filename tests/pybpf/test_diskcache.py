"""The trusted cache folder: what is read is what we wrote, in a folder only we (or root) could
write; the cache stays within its bound; clearing tells the truth. docs/security.md."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from pybpf import diskcache

OTHER_UID = 65534           # nobody: owns nothing of ours
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files to another user")


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(diskcache, "settings", diskcache.Settings())


def entry(kind="objects", name="e.json") -> str:
    return os.path.join(diskcache.root(), kind, name)


def only_note() -> str:
    (note,) = diskcache.notes()
    assert "\n" not in note
    return note


def test_round_trip_private_modes_and_checksum():
    diskcache.write("objects", "e.json", b"payload")
    assert diskcache.read("objects", "e.json") == b"payload"
    assert os.stat(diskcache.root()).st_mode & 0o777 == 0o700
    assert os.stat(os.path.dirname(entry())).st_mode & 0o777 == 0o700
    assert os.stat(entry()).st_mode & 0o777 == 0o600
    assert open(entry(), "rb").read().startswith(b"pybpf-cache sha256=")
    assert diskcache.read("objects", "absent.json") is None and diskcache.notes() == []


def test_damaged_entry_is_removed():
    diskcache.write("objects", "e.json", b"payload")
    with open(entry(), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        f.write(b"P")
    assert diskcache.read("objects", "e.json") is None
    assert not os.path.exists(entry())
    assert "removed a damaged entry objects/e.json" in only_note()


def test_symlink_in_place_of_an_entry_is_not_followed(tmp_path):
    diskcache.write("objects", "e.json", b"ours")
    elsewhere = tmp_path / "valid-entry"
    os.rename(entry(), elsewhere)                 # a valid entry, root's own, but not in its place
    os.symlink(elsewhere, entry())
    assert diskcache.read("objects", "e.json") is None
    assert "objects/e.json is a symlink" in only_note()
    diskcache.write("objects", "e.json", b"new")  # replaces the link, never writes through it
    assert not os.path.islink(entry()) and diskcache.read("objects", "e.json") == b"new"
    assert elsewhere.read_bytes().endswith(b"ours")


def test_symlink_in_place_of_a_folder_is_not_followed(tmp_path):
    diskcache.write("objects", "e.json", b"ours")
    target = tmp_path / "elsewhere"
    os.rename(os.path.dirname(entry()), target)
    os.symlink(target, os.path.dirname(entry()))
    assert diskcache.read("objects", "e.json") is None
    diskcache.write("objects", "other.json", b"x")
    assert sorted(os.listdir(target)) == ["e.json"]
    assert "'objects' is a symlink" in only_note()


def test_group_writable_folder_is_not_used():
    diskcache.write("objects", "e.json", b"ours")
    os.chmod(os.path.dirname(entry()), 0o770)
    assert diskcache.read("objects", "e.json") is None
    assert "writable by its group or by others (mode 770)" in only_note()


@needs_root
def test_entry_and_folder_of_another_user_are_not_used():
    diskcache.write("objects", "e.json", b"theirs")
    os.chown(entry(), OTHER_UID, OTHER_UID)
    assert diskcache.read("objects", "e.json") is None
    assert f"objects/e.json is owned by uid {OTHER_UID}" in only_note()
    os.chown(entry(), 0, 0)
    os.chown(os.path.dirname(entry()), OTHER_UID, OTHER_UID)
    assert diskcache.read("objects", "e.json") is None


@needs_root
def test_root_uses_no_cache_under_another_users_home(tmp_path, monkeypatch):
    # sudo -E: HOME and XDG_CACHE_HOME still name the user's folders
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, OTHER_UID, OTHER_UID)
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(home))
    diskcache.write("objects", "e.json", b"x")
    assert diskcache.read("objects", "e.json") is None
    assert os.listdir(home) == []                 # nothing of root's left in the user's home
    note = only_note()
    assert f"{home} is owned by uid {OTHER_UID}, not by uid 0 or root" in note and "sudo -E" in note


def test_world_writable_folder_above_the_root_must_be_sticky(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    diskcache.write("objects", "e.json", b"x")
    assert not os.path.exists(shared / "cache")
    assert "writable by its group or by others and not sticky" in only_note()
    os.chmod(shared, 0o1777)                      # as /tmp: others cannot rename our folder away
    diskcache.write("objects", "e.json", b"x")
    assert diskcache.read("objects", "e.json") == b"x"


def test_least_recently_used_entries_go_first():
    now = time.time()
    for age, name in enumerate(("d", "c", "b", "a")):       # a is the oldest
        diskcache.write("objects", name, bytes(900))
        os.utime(entry(name=name), (now - 100 * (age + 1), now - 100 * (age + 1)))
    assert diskcache.read("objects", "a") == bytes(900)     # used: now the most recent
    diskcache.settings.max_bytes = 3000
    diskcache.write("btf", "e", bytes(900))                 # 5 entries of 984 bytes: 2 must go
    left = {n for kind in ("objects", "btf") for n in os.listdir(os.path.join(diskcache.root(), kind))}
    assert left == {"a", "d", "e"}


def test_bound_from_the_environment(monkeypatch):
    monkeypatch.setenv(diskcache.MAX_SIZE_ENV, "1K")
    assert diskcache.max_bytes() == 1024
    monkeypatch.setenv(diskcache.MAX_SIZE_ENV, "lots")
    assert diskcache.max_bytes() == diskcache.DEFAULT_MAX_BYTES
    assert diskcache.MAX_SIZE_ENV in only_note()


def test_leftovers_of_a_killed_writer_are_removed():
    diskcache.write("objects", "e.json", b"x")
    folder = os.path.dirname(entry())
    stale, fresh = os.path.join(folder, ".tmp-stale"), os.path.join(folder, ".tmp-fresh")
    for path in (stale, fresh):
        with open(path, "wb") as f:
            f.write(b"half an entr")
    old = time.time() - 2 * diskcache.STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    diskcache.write("objects", "f.json", b"y")
    assert sorted(os.listdir(folder)) == [".tmp-fresh", "e.json", "f.json"]   # a live writer's stays


def test_a_writer_killed_mid_write_leaves_no_entry():
    # SIGKILL between writing the .tmp file and renaming it: readers never see half an entry
    code = ("import os, signal; from pybpf import diskcache; "
            "os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
            "diskcache.write('objects', 'e.json', b'x' * 100000)")
    done = subprocess.run([sys.executable, "-c", code], env=os.environ.copy())
    assert done.returncode == -9
    (leftover,) = os.listdir(os.path.dirname(entry()))
    assert leftover.startswith(diskcache.TMP_PREFIX)
    assert diskcache.read("objects", "e.json") is None


@needs_root
def test_clear_reports_what_it_could_not_remove(unprivileged_env):
    # after `sudo -E pybpf`, the user's --clear-cache meets a folder of root's in its cache
    home = tempfile.mkdtemp(prefix="pybpf-test-home-")     # where the user can reach it
    try:
        cache = os.path.join(home, ".cache")
        diskcache.write("objects", "e.json", b"x")
        os.mkdir(cache)
        os.rename(diskcache.root(), os.path.join(cache, "pybpf"))
        roots = os.path.join(cache, "pybpf", "btf")
        os.mkdir(roots, 0o700)
        with open(os.path.join(roots, "vmlinux.idx"), "wb") as f:
            f.write(b"root's")
        for folder, _, names in os.walk(home):
            if not folder.startswith(roots):
                for path in [folder] + [os.path.join(folder, n) for n in names]:
                    os.chown(path, OTHER_UID, OTHER_UID)
        done = subprocess.run(["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups",
                               sys.executable, "-m", "pybpf.cli", "--clear-cache"],
                              env=unprivileged_env({**os.environ, "XDG_CACHE_HOME": cache}),
                              capture_output=True, text=True,
                              cwd="/")
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith(f"ERROR: could not empty the cache {cache}/pybpf: {roots}: "
                                      f"Permission denied (and 1 more); remove it as the user that owns it")
        assert len(done.stderr.splitlines()) == 1
        assert not os.path.exists(os.path.join(cache, "pybpf", "objects"))    # what it could remove is gone
    finally:
        shutil.rmtree(home)


def pybpf_imports(module: str) -> set[str]:
    """The pybpf modules that `module`'s source imports (at any depth of its code)."""
    import ast
    import importlib.util

    with open(importlib.util.find_spec(module).origin) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pybpf"):
            found |= {f"{node.module}.{a.name}" if node.module == "pybpf" else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pybpf")}
    return found


def test_a_leaf_module_that_the_caches_use_without_the_compiler():
    # btf.py and parser.py reach the cache folder without pybpf.cache, which imports the compiler;
    # diskcache itself needs nothing of pybpf's but the trust checks, a leaf it shares with the
    # reading of included headers, and the light records (a leaf too)
    assert pybpf_imports("pybpf.diskcache") == {"pybpf.trust", "pybpf.records"}
    assert pybpf_imports("pybpf.trust") == set() == pybpf_imports("pybpf.records")
    for user in ("pybpf.btf", "pybpf.parser", "pybpf.backend.objspec"):
        assert "pybpf.cache" not in pybpf_imports(user)
    assert "pybpf.diskcache" in pybpf_imports("pybpf.btf") & pybpf_imports("pybpf.parser")
