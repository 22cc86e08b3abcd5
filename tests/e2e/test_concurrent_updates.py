"""Two CPUs adding the same new keys at once lose nothing: the one whose insert finds the key
already there (EEXIST) applies its update to that entry."""

import os
import re

import pytest

from e2e_helpers import READY, trace

RACE_C = r"""
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
/* prog N NAME: two processes named NAME, one pinned to each of CPUs 0 and 1, each calling
   lseek(fd, i, SEEK_SET) for i < N, released together so they insert the same keys at once */
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int go[2];
    if (pipe(go)) return 1;
    for (int cpu = 0; cpu < 2; cpu++) {
        if (fork() == 0) {
            cpu_set_t set;
            CPU_ZERO(&set); CPU_SET(cpu, &set);
            sched_setaffinity(0, sizeof set, &set);
            prctl(PR_SET_NAME, argv[2], 0, 0, 0);
            int fd = open("/dev/null", O_RDONLY);
            char c;
            if (read(go[0], &c, 1) != 1) _exit(1);
            for (long i = 0; i < n; i++) syscall(SYS_lseek, fd, i, SEEK_SET);
            _exit(0);
        }
    }
    if (write(go[1], "xx", 2) != 2) return 1;
    while (wait(NULL) > 0) ;
    return 0;
}
"""
KEYS = 50_000


@pytest.mark.kernel
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("aggregation, per_key", [("count()", 2), ("sum(2)", 4)])
def test_two_cpus_inserting_the_same_keys_lose_no_update(compile_c, aggregation, per_key):
    racer = compile_c(RACE_C)
    name = f"pbrace{os.getpid()}"[:15]
    out = trace(["--map-entries", str(2 * KEYS), "-e",
                 READY + f'tracepoint:syscalls:sys_enter_lseek /comm == "{name}"/ '
                         f"{{ @[args->offset] = {aggregation}; }}"],
                [racer, str(KEYS), name], timeout=60)
    values = [int(v) for v in re.findall(r"^@\[\d+\]: (\d+)$", out, re.M)]
    assert len(values) == KEYS
    assert [v for v in values if v != per_key] == []
