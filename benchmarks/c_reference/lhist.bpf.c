/* @ = lhist(nsecs & 0xff, 0, 256, 16): bucket 0 below the range, 17 at or above it. */
#include "reference.h"

#define MIN 0
#define MAX 256
#define STEP 16
#define BUCKETS ((MAX - MIN) / STEP + 2)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUCKETS);
	__type(key, unsigned int);
	__type(value, unsigned long long);
} buckets SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int lhist(struct syscall_enter *ctx)
{
	long long v = bpf_ktime_get_boot_ns() & 0xff;	/* nsecs: boot time, as bpftrace 0.26 */
	unsigned int index = v < MIN ? 0 : v >= MAX ? BUCKETS - 1 : (v - MIN) / STEP + 1;
	unsigned long long *count = bpf_map_lookup_elem(&buckets, &index);

	if (count)
		*count += 1;
	return 0;
}
