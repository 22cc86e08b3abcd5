"""Rendering of diagnostics in bpftrace's form: `FILE:L:C1-C2: ERROR: msg`, the line, `~` under the span."""

from pybpf.diagnostics import NO_SPAN, CompileError, Diagnostics, Span


def rendered(source, span, message="msg", filename="stdin", hint=None):
    d = Diagnostics(source, filename)
    d.error(message, span, hint)
    return d.render()


def test_single_line():
    assert rendered("BEGIN { foo(); }", Span(1, 9, 1, 12), "Unknown function: foo") == (
        "stdin:1:9-12: ERROR: Unknown function: foo\n"
        "BEGIN { foo(); }\n"
        "        ~~~")


def test_second_line_and_filename():
    src = "BEGIN {\n  @x = $y;\n}\n"
    assert rendered(src, Span(2, 8, 2, 10), "Undefined or undeclared variable: $y",
                    filename="/tmp/a.bt") == (
        "/tmp/a.bt:2:8-10: ERROR: Undefined or undeclared variable: $y\n"
        "  @x = $y;\n"
        "       ~~")


def test_multi_line_span_underlines_to_the_end_of_its_first_line():
    src = "BEGIN { if (1) {\n  @a = 1;\n} }"
    assert rendered(src, Span(1, 9, 3, 2)) == (
        "stdin:1:9-17: ERROR: msg\n"
        "BEGIN { if (1) {\n"
        "        ~~~~~~~~")


def test_empty_span_gets_one_tilde():
    assert rendered("BEGIN {", Span(1, 8, 1, 8)) == "stdin:1:8-9: ERROR: msg\nBEGIN {\n       ~"


def test_tabs_print_as_four_spaces_like_bpftrace():
    # bpftrace 0.17 on the same file prints exactly this
    src = "BEGIN {\n\t@a = 1;\t@b = 1 + ;\n}\n"
    assert rendered(src, Span(2, 19, 2, 20), "syntax error, unexpected ;", "/tmp/t.bt") == (
        "/tmp/t.bt:2:19-20: ERROR: syntax error, unexpected ;\n"
        "    @a = 1;    @b = 1 + ;\n"
        "                        ~")


def test_hint_and_warning_and_no_span():
    d = Diagnostics("BEGIN { }")
    d.warning("careful", Span(1, 1, 1, 6))
    d.error("no probes", NO_SPAN, )
    d.error("bad", Span(1, 7, 1, 10), hint="try this")
    assert not Diagnostics("x").has_errors
    assert d.has_errors
    assert d.render() == (
        "stdin:1:1-6: WARNING: careful\nBEGIN { }\n~~~~~\n"
        "stdin: ERROR: no probes\n"
        "stdin:1:7-10: ERROR: bad\nBEGIN { }\n      ~~~\nHINT: try this")


def test_compile_error_carries_items_and_renders_as_str():
    d = Diagnostics("BEGIN { }")
    d.error("bad", Span(1, 1, 1, 6))
    err = d.as_error()
    assert isinstance(err, CompileError)
    assert str(err) == d.render()
    assert [i.message for i in err.items] == ["bad"]


def test_span_join():
    assert Span(1, 2, 1, 5).join(Span(3, 1, 3, 4)) == Span(1, 2, 3, 4)


def test_the_source_line_is_the_one_the_parser_counted_whatever_separators_it_holds():
    source = "BEGIN {\x0c\x1c\u2028 foo(); }\r\nEND { }"
    diags = Diagnostics(source)
    diags.error("Unknown function: foo", Span(1, 12, 1, 15))
    header, line, underline = diags.render().split("\n")
    assert line == "BEGIN {\x0c\x1c\u2028 foo(); }" and underline == " " * 11 + "~~~"
