"""A property over hostile input: whatever the source, the command line ends in success, or in
exactly one report (one `ERROR:` line, or one diagnostic: its header, the source line, the
underline) and exit status 1; never a traceback or an "internal error".

The sources: deep nesting (past the parser's limit too), huge literals, random bytes (invalid
UTF-8, NULs) spliced into a valid program, very long lines. Most go through `pybpf.cli.main` in
this process, as a script file (bytes) compiled to LLVM IR (`--emit llvm -o FILE`: no kernel); a
few through the real command with a closed stdout, a closed stdin, or an ASCII-only terminal.

Budget: PYBPF_HYPOTHESIS_EXAMPLES=N (default 60).
"""

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf import cli

EXAMPLES = int(os.environ.get("PYBPF_HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

VALID = b'BEGIN { $a = 1; @m[$a] = count(); printf("%d %s\\n", $a, "s"); }'
HEADER = re.compile(r"^\S.*:\d+:\d+-\d+: ERROR: .+$")


def assert_success_or_one_report(status: int, stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if status == 0:
        assert stderr == "", stderr
        return
    assert status == 1, (status, stderr)
    lines = stderr.removesuffix("\n").split("\n")
    if len(lines) == 1:
        assert lines[0].startswith("ERROR: "), stderr
        return
    assert len(lines) in (3, 4) and HEADER.match(lines[0]), stderr    # 4: with its HINT line
    assert set(lines[2]) <= {" ", "~"} and "~" in lines[2], stderr
    assert len(lines) == 3 or lines[3].startswith("HINT: "), stderr


def nested(depth: int, shape: str) -> bytes:
    inner = {"parens": "(" * depth + "1" + ")" * depth,
             "sum": "+".join(["1"] * depth),
             "unary": "-" * (depth % 2) + "~" * depth + "1",
             "ternary": "$a ? 1 : " * depth + "0"}.get(shape)
    if inner is None:       # nested ifs
        return (b"BEGIN { $a = 1; " + b"if ($a) { " * depth + b"@x = 1; " + b"}" * depth + b" }")
    return f"BEGIN {{ $a = 1; @x = {inner}; }}".encode()


deep = st.builds(nested, st.integers(1, 12_000), st.sampled_from(["parens", "sum", "unary",
                                                                   "ternary", "ifs"]))
huge_literals = st.one_of(
    st.integers(0, 1 << 70).map(lambda n: str(n).encode()),
    st.integers(0, 1 << 70).map(lambda n: hex(n).encode()),
    st.integers(1, 6000).map(lambda n: b"9" * n),
    st.integers(1, 6000).map(lambda n: b"0x" + b"f" * n),
    st.sampled_from([b"1_000", b"0_", b"0b", b"0x", b"010", b"09", b"-9223372036854775809"]),
).map(lambda literal: b'BEGIN { printf("%d\\n", ' + literal + b'); }')


@st.composite
def spliced_bytes(draw):
    """Random bytes (any, NULs and invalid UTF-8 included) put in, or over, a valid program."""
    junk = draw(st.binary(min_size=1, max_size=40))
    at = draw(st.integers(0, len(VALID)))
    cut = draw(st.integers(0, 3))
    return VALID[:at] + junk + VALID[at + cut:]


long_lines = st.builds(lambda n, at: VALID[:at] + b" " * n + VALID[at:],
                       st.integers(60_000, 140_000), st.sampled_from([8, 16, 34, 45]))
printf_widths = st.builds(lambda w, p: f'BEGIN {{ printf("%{w}.{p}d|%{w}s\\n", 1, "a"); }}'.encode(),
                          st.integers(0, 10 ** 25), st.integers(0, 10 ** 25))
hostile_sources = st.one_of(deep, huge_literals, spliced_bytes(), long_lines, printf_widths)


def run_main(source: bytes, params: tuple[str, ...] = ()) -> tuple[int, str]:
    """cli.main on the source as a script file -> (exit status, stderr)."""
    stderr = io.StringIO()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(stderr):
        script, out = os.path.join(folder, "s.bt"), os.path.join(folder, "out.ll")
        with open(script, "wb") as f:
            f.write(source)
        try:
            status = cli.main(["--no-cache", "--emit", "llvm", "-o", out, script, *params])
        except SystemExit as e:         # what argparse and the early checks end with
            status = e.code
    return status, stderr.getvalue()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(source=hostile_sources)
def test_hostile_sources_end_in_success_or_one_report(source):
    assert_success_or_one_report(*run_main(source))


# Parameters as the command line hands them over: any text, bytes not UTF-8 as lone surrogates.
params = st.binary(max_size=30).map(lambda raw: raw.replace(b"\0", b"").decode("utf-8", "surrogateescape"))


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(first=params, second=params)
def test_hostile_parameters_end_in_success_or_one_report(first, second):
    source = b'BEGIN { @x = $1 + 1; printf("%s %d\\n", str($2), $#); }'
    assert_success_or_one_report(*run_main(source, ("--", first, second)))


def test_the_deepest_accepted_program_compiles_and_one_level_more_is_one_report():
    from pybpf.parser import MAX_NESTING
    assert run_main(nested(MAX_NESTING - 10, "sum")) == (0, "")
    status, stderr = run_main(nested(MAX_NESTING + 10, "sum"))
    assert_success_or_one_report(status, stderr)
    assert status == 1 and f"pybpf compiles up to {MAX_NESTING} levels" in stderr


# Through the real command: odd terminals and closed descriptors -----------------------------

PYBPF = [sys.executable, "-m", "pybpf.cli"]
ENVIRONMENTS = {
    "closed stdout": ("exec \"$@\" >&-", {}),
    "closed stdin": ("exec \"$@\" <&-", {}),
    "ascii terminal": ("exec \"$@\"", {"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}),
}


@settings(max_examples=max(4, EXAMPLES // 10), **SETTINGS)
@given(source=st.one_of(spliced_bytes(), huge_literals), where=st.sampled_from(sorted(ENVIRONMENTS)),
       from_stdin=st.booleans())
def test_hostile_sources_in_hostile_surroundings(source, where, from_stdin):
    shell, env = ENVIRONMENTS[where]
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "s.bt")
        with open(script, "wb") as f:
            f.write(source)
        args = ["--no-cache", "--emit", "llvm", "-"] if from_stdin else ["--no-cache", "--emit", "llvm", script]
        with open(script, "rb") as stdin:
            done = subprocess.run(["bash", "-c", shell, "bash", *PYBPF, *args], stdin=stdin,
                                  capture_output=where != "closed stdout", timeout=60,
                                  stderr=subprocess.PIPE if where == "closed stdout" else None,
                                  env={**os.environ, **env})
    assert_success_or_one_report(done.returncode, done.stderr.decode("utf-8", "backslashreplace"))
