"""pybpf prints what bpftrace prints: the scripts in golden/ against outputs captured from bpftrace
(see golden/README.md for where bpftrace 0.17 is wrong and the files hold the correct output)."""

import os

import pytest

from e2e_helpers import run_pybpf

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
SCRIPTS = sorted(f[:-3] for f in os.listdir(GOLDEN) if f.endswith(".bt"))


def test_every_script_has_both_goldens():
    assert len(SCRIPTS) >= 5
    for name in SCRIPTS:
        for ext in ("txt", "json"):
            assert os.path.getsize(os.path.join(GOLDEN, f"{name}.{ext}")) > 0, (name, ext)


@pytest.mark.kernel
@pytest.mark.parametrize("fmt", ["txt", "json"])
@pytest.mark.parametrize("name", SCRIPTS)
def test_output_equals_bpftrace(name, fmt):
    # run where the scripts are, as regenerate.sh does: errorf's records name the file as given
    args = (["-f", "json"] if fmt == "json" else []) + [f"{name}.bt"]
    result = run_pybpf(args, cwd=GOLDEN)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with open(os.path.join(GOLDEN, f"{name}.{fmt}")) as f:
        expected = f.read()
    assert result.stdout == expected
