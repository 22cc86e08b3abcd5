/* @c[nsecs % 16] = count(); $t = 0; for ($kv : @c) { $t += $kv.1; } @t = $t;
   The loop as a C programmer writes it: bpf_for_each_map_elem with a callback that adds up each
   element's per-CPU counts (bpf_map_lookup_percpu_elem until a CPU past the last). */
#include "reference.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, unsigned long long);
	__type(value, unsigned long long);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, unsigned long long);
	__type(value, unsigned long long);
} total SEC(".maps");

struct sum {
	unsigned long long total;
};

static long add_cpus(void *map, unsigned long long *key, unsigned long long *value, struct sum *sum)
{
	for (unsigned int cpu = 0; cpu < 1024; cpu++) {
		unsigned long long *count = bpf_map_lookup_percpu_elem(&counts, key, cpu);

		if (!count)
			break;
		sum->total += *count;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int for_each_sum(struct syscall_enter *ctx)
{
	unsigned long long key = bpf_ktime_get_boot_ns() % 16, zero = 0;
	struct sum sum = { 0 };

	add(&counts, &key, 1);
	bpf_for_each_map_elem(&counts, add_cpus, &sum, 0);
	bpf_map_update_elem(&total, &zero, &sum.total, BPF_ANY);
	return 0;
}
