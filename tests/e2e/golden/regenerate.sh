#!/bin/sh
# Regenerate the golden outputs from bpftrace (needs root and bpftrace; 0.17 was used).
#   tests/e2e/golden/regenerate.sh            every script
#   tests/e2e/golden/regenerate.sh maps.bt    one script
# bpftrace's stderr (its RLIMIT_MEMLOCK warning, signed-division warnings) is not part of the output.
# Scripts listed in HANDWRITTEN use what bpftrace 0.17 rejects: their expected files are kept (see README).
set -eu
cd "$(dirname "$0")"
HANDWRITTEN="printf_extended.bt records.bt json_records.bt"
if ! command -v bpftrace >/dev/null 2>&1; then
    echo "bpftrace is not installed: nothing regenerated" >&2
    exit 1
fi
scripts="${*:-$(ls *.bt)}"
for script in $scripts; do
    case " $HANDWRITTEN " in *" $script "*) echo "skip $script (hand-written expectations)"; continue;; esac
    name="${script%.bt}"
    # bpftrace 0.17 prints printf's "%%" as "%%": keep current bpftrace's (and C's) "%"
    bpftrace "$script" 2>/dev/null | grep -v RLIMIT_MEMLOCK | sed 's/%%/%/g' > "$name.txt" || true
    # and, with -f json, two blank lines before the maps at exit: not JSON, dropped; its
    # attached_probes record gets the "count" bpftrace 0.26 writes beside "data"
    bpftrace -f json "$script" 2>/dev/null | grep -v RLIMIT_MEMLOCK | grep -v '^$' | sed 's/%%/%/g' \
        | sed 's/^{"type": "attached_probes", "data": {"probes": \([0-9]*\)}}$/{"type": "attached_probes", "count": \1, "data": {"probes": \1}}/' \
        > "$name.json" || true
    echo "wrote $name.txt $name.json"
done
