/* Shared by the hand-written C references of benchmarks/kernel_cost.py: the tracepoint records
   (offsets from /sys/kernel/tracing/events/syscalls/<name>/format) and the map shapes that pybpf
   uses for the same script (per-CPU hash for keyed aggregations, per-CPU array for unkeyed ones),
   so the comparison is of the code, not of the map kinds. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_ENTRIES 4096

struct syscall_enter {          /* sys_enter_getppid */
	unsigned long long common;
	int syscall_nr;
};

struct openat_enter {           /* sys_enter_openat */
	unsigned long long common;
	long long syscall_nr;
	unsigned long long dfd;
	const char *filename;
};

/* An aggregation's update: the value in place when the key is there, else an insert that fails
   quietly when the map is full (pybpf counts such failures, which these runs never reach). */
static __always_inline void add(void *map, const void *key, unsigned long long amount)
{
	unsigned long long *value = bpf_map_lookup_elem(map, key);

	if (value)
		*value += amount;
	else
		bpf_map_update_elem(map, key, &amount, BPF_NOEXIST);
}

char LICENSE[] SEC("license") = "GPL";
