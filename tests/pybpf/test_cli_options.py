"""The command lines pybpf reads without argparse (`pybpf FILE [ARGS]`, `pybpf -e PROGRAM`: a
start imports no argparse for them) give exactly what the parser gives; every other command line
goes to the parser."""

import pytest

from pybpf import cli

COMMON = (
    ["script.bt"],
    ["script.bt", "1", "two"],
    ["script.pbt", "-q", "--", "-e", "x"],      # after the script: its arguments, whatever they look like
    ["script.bt", "--"],
    [""],
    ["-e", "BEGIN { exit(); }"],
    ["-e", 'tracepoint:syscalls:sys_enter_openat { printf("%s\\n", comm); }'],
    ["-e", ""],
)
OTHERS = (
    [],
    ["-"],                          # the script from stdin: the parser reads it
    ["-e"],
    ["-e", "-x"],
    ["-eBEGIN{}"],
    ["-e", "BEGIN{}", "1"],
    ["-q", "-e", "BEGIN{}"],
    ["-e", "BEGIN{}", "-q"],
    ["-v", "script.bt"],
    ["--dry-run", "script.bt"],
    ["-h"],
    ["-l"],
    ["--", "script.bt"],
)


@pytest.mark.parametrize("argv", COMMON, ids=repr)
def test_a_common_command_line_reads_as_the_parser_reads_it(argv):
    assert vars(cli._common_options(argv)) == vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize("argv", OTHERS, ids=repr)
def test_any_other_command_line_goes_to_the_parser(argv):
    assert cli._common_options(argv) is None


def test_the_defaults_are_fresh_for_each_command_line():
    first = cli._common_options(["a.bt"])
    first.include_dirs.append("/tmp")
    assert cli._common_options(["a.bt"]).include_dirs == [] == cli._parser().parse_args(["a.bt"]).include_dirs


def test_every_option_has_its_default_in_one_place():
    parsed = vars(cli._parser().parse_args(["a.bt", "-q"]))
    assert set(cli._option_defaults()) == set(parsed) - {"args"}
    assert {k: v for k, v in parsed.items() if k != "args"} == cli._option_defaults()
