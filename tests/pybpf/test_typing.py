"""The public modules are typed: `mypy --strict` on them finds nothing. mypy cannot follow the
package-dir mapping (pybpf.runtime is runtime/), so it runs on a tree of links laid out as the
installed package is."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUBLIC_MODULES = ["pybpf/__init__.py", "pybpf/api.py", "pybpf/errors.py", "pybpf/metrics.py", "pybpf/tools/__init__.py",
                  "pybpf/tools/opensnoop.py", "pybpf/tools/syscount.py",
                  "pybpf/tools/biolatency.py", "pybpf/tools/execsnoop.py",
                  "pybpf/tools/profile.py"]


def _installed_layout(tmp_path) -> str:
    package = tmp_path / "pybpf"
    package.mkdir()
    for name in os.listdir(os.path.join(ROOT, "pybpf")):
        (package / name).symlink_to(os.path.join(ROOT, "pybpf", name))
    for sub in ("runtime", "backend"):
        (package / sub).symlink_to(os.path.join(ROOT, sub))
    return str(tmp_path)


def test_public_modules_pass_mypy_strict(tmp_path):
    # mypy is in the test extras: without it this fails rather than skips, so a broken install
    # cannot pass the typing check silently.
    top = _installed_layout(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / ".mypy_cache"), *PUBLIC_MODULES],
        cwd=top, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_says_it_is_typed():
    assert os.path.exists(os.path.join(ROOT, "pybpf", "py.typed"))
