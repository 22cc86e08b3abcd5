"""The command's cache-hit path imports only what running needs: no compiler (Lark, llvmlite), no
ELF reader, no dataclasses machinery, no subprocess or shutil, no typing, no hashlib (OpenSSL), no
importlib.util, no json (the cache entry is marshal's), no locale (argparse's gettext lookups), no re
(scripts/pybpf, not pip's launcher, starts the command), no argparse at all for `-e PROGRAM` and
`FILE`, and of the attach modules and the map kinds only those of the script's probes and maps
(benchmarks/first_event.py times the result)."""

import ast
import os
import subprocess
import sys

import pytest

SCRIPT = 'tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); } BEGIN { printf("hi\\n"); exit(); }'
HEAVY = ("lark", "llvmlite", "elftools", "dataclasses", "inspect", "subprocess", "shutil", "json", "locale",
         "importlib", "warnings", "re", "string",
         "pybpf.parser", "pybpf.semantic", "pybpf.backend.codegen", "typing", "hashlib", "_hashlib",
         "importlib.util", "pybpf.runtime.attach.uprobe", "pybpf.runtime.attach.fentry",
         "pybpf.runtime.attach.kprobe", "pybpf.runtime.attach.usdt",
         # the map kinds the script's maps do not have (it counts)
         "pybpf.mapkinds.hist", "pybpf.mapkinds.lhist", "pybpf.mapkinds.tseries", "pybpf.mapkinds.avg",
         "pybpf.mapkinds.stats")
# Loaded before pybpf by an editable install's finder, yet not to be imported by pybpf: forgotten
# first, so that pybpf's own import of them would load them again and show.
FORGOTTEN = ("re", "string")
RUN = (f"import sys; [sys.modules.pop(m, None) for m in {FORGOTTEN!r}]; "
       "from pybpf import cli; status = cli.main(sys.argv[1:]); "
       f"print(repr([status, [m for m in {HEAVY + ('argparse',)!r} if m in sys.modules]]), "
       "file=sys.stderr)")


@pytest.mark.kernel
def test_a_cache_hit_imports_no_compiler_and_no_dataclasses(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))

    def heavy_modules(*options: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", RUN, *options, "-e", SCRIPT], env=env,
                             capture_output=True, text=True, timeout=120)
        status, loaded = ast.literal_eval(out.stderr.strip().splitlines()[-1])
        assert status == 0 and out.stdout.startswith("Attaching 2 probes...\nhi\n")
        return loaded

    # What the interpreter loads before any pybpf code (site, a sitecustomize: certifi's brings
    # shutil in through importlib.resources) is not pybpf's to avoid.
    bare = subprocess.run([sys.executable, "-c", "import sys; "
                           f"print(repr([m for m in {HEAVY!r} if m in sys.modules]))"],
                          env=env, capture_output=True, text=True, timeout=60)
    at_start = set(ast.literal_eval(bare.stdout)) - set(FORGOTTEN)
    assert {"lark", "llvmlite", "dataclasses"} <= set(heavy_modules())     # a miss compiles
    assert [m for m in heavy_modules() if m not in at_start] == []
    # an option: the parser reads the command line (argparse), still without locale
    assert {m for m in heavy_modules("-B", "line") if m not in at_start} == {"argparse", "re"}
