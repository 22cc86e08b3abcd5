"""A program the verifier rejects is shown on the statement whose code failed (the object's line
info maps the failing instruction back to the source), with the verifier's last lines under it."""

import pytest

from e2e_helpers import run_pybpf

LOOP = """BEGIN {
  $i = 0;
  while ($i >= 0) { $i = $i + 1; }
  printf("done\\n");
}
"""


@pytest.mark.kernel
def test_rejection_points_at_the_statement(tmp_path):
    script = tmp_path / "loop.pbt"
    script.write_text(LOOP)
    r = run_pybpf([str(script)])
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[:3] == [
        f"{script}:3:3-35: ERROR: the kernel's verifier rejected the program for BEGIN",
        "  while ($i >= 0) { $i = $i + 1; }",
        "  ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"]
    assert any("too large" in line or "infinite loop" in line for line in lines)
    assert lines[-1] == "(run with -v for the whole verifier log)"
    assert "Traceback" not in r.stderr


@pytest.mark.kernel
def test_verbose_shows_the_whole_log(tmp_path):
    script = tmp_path / "loop.pbt"
    script.write_text(LOOP)
    r = run_pybpf(["-v", str(script)])
    assert r.returncode == 1
    assert "processed" in r.stderr and len(r.stderr.splitlines()) > 20
