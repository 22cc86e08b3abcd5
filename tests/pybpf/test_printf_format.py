"""A printf conversion is read by hand (the run side formats with it, and a cache hit imports no
re): what it reads is what the pattern printf_format's docstring names matches, on any text."""

import re

from hypothesis import example, given
from hypothesis import strategies as st

from pybpf.printf_format import _spec_at

PATTERN = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d*))?(hh|h|ll|l)?(.?)", re.DOTALL)
# the characters a conversion is made of, and others (a newline, a non-ASCII digit, letters)
SPEC_TEXT = st.text(alphabet=st.sampled_from("-+ #0123456789.hlldsxrp%*\n\u0663\u00b2az"), max_size=12)


@given(before=st.text(max_size=3), spec=SPEC_TEXT)
@example(before="", spec="")
@example(before="pid ", spec="-08.3lld\n")
@example(before="", spec="\u0663\u0663d")       # Arabic-Indic digits: \d matches them, as isdecimal
@example(before="", spec="\u00b2d")             # a superscript: a digit, but not a decimal one
@example(before="", spec="hhhd")
@example(before="", spec=".x")
def test_a_conversion_is_read_as_the_pattern_matches_it(before, spec):
    fmt = before + "%" + spec
    pos = len(before)
    m = PATTERN.match(fmt, pos)
    assert _spec_at(fmt, pos) == (*m.groups(), m.end())
