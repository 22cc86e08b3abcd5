"""Source locations for the generated code, so a verifier rejection can point at the source line.

    debug = DebugInfo(module, "stdin")
    fn.set_metadata("dbg", debug.subprogram(fn.name))
    builder.debug_metadata = debug.location(fn_scope, span)      # every instruction after it

LLVM turns these into the BPF object's .BTF.ext line info: (instruction offset, line, column) per
program section, which pybpf.backend.objspec reads back. Only lines and columns are known there, so
the spans of the statements are kept too (`spans`), to underline the whole statement.
"""

from __future__ import annotations

from pybpf.backend.irutil import ir

from pybpf.diagnostics import LINE_INFO_MAX_COLUMN, Span


class DebugInfo:
    def __init__(self, module: ir.Module, filename: str):
        self.module = module
        self.file = module.add_debug_info("DIFile", {"filename": filename, "directory": "."})
        self.unit = module.add_debug_info("DICompileUnit", {
            "language": ir.DIToken("DW_LANG_C99"), "file": self.file, "producer": "pybpf",
            "runtimeVersion": 0, "isOptimized": True,
            "emissionKind": ir.DIToken("LineTablesOnly")}, is_distinct=True)
        module.add_named_metadata("llvm.dbg.cu", self.unit)
        i32 = ir.IntType(32)
        module.add_named_metadata("llvm.module.flags",
                                  [ir.Constant(i32, 2), "Debug Info Version", ir.Constant(i32, 3)])
        module.add_named_metadata("llvm.module.flags",
                                  [ir.Constant(i32, 7), "Dwarf Version", ir.Constant(i32, 5)])
        long = module.add_debug_info("DIBasicType", {
            "name": "long", "size": 64, "encoding": ir.DIToken("DW_ATE_signed")})
        ctx = module.add_debug_info("DIDerivedType", {
            "tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": None, "size": 64})
        self.function_type = module.add_debug_info(
            "DISubroutineType", {"types": module.add_metadata([long, ctx])})
        self.spans: set[tuple[int, int, int, int]] = set()

    def subprogram(self, name: str, span: Span):
        return self.module.add_debug_info("DISubprogram", {
            "name": name, "file": self.file, "line": span.line, "type": self.function_type,
            "isLocal": False, "isDefinition": True, "unit": self.unit, "scopeLine": span.line,
            "spFlags": ir.DIToken("DISPFlagDefinition | DISPFlagOptimized")}, is_distinct=True)

    def location(self, scope, span: Span):
        self.spans.add((span.line, span.column, span.end_line, span.end_column))
        return self.module.add_debug_info("DILocation", {
            "line": span.line, "column": min(span.column, LINE_INFO_MAX_COLUMN), "scope": scope})
