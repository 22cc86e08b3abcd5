/* @ = hist(nsecs & 0xffff): bucket 0 for negative values, 1 for 0, 2 + log2(v) above. */
#include "reference.h"

#define BUCKETS 66

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BUCKETS);
	__type(key, unsigned int);
	__type(value, unsigned long long);
} buckets SEC(".maps");

static __always_inline unsigned int log2_u64(unsigned long long v)
{
	unsigned int bits = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; bits |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; bits |= shift;
	shift = (v > 0xff) << 3; v >>= shift; bits |= shift;
	shift = (v > 0xf) << 2; v >>= shift; bits |= shift;
	shift = (v > 0x3) << 1; v >>= shift; bits |= shift;
	return bits | (v > 1);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int hist(struct syscall_enter *ctx)
{
	long long v = bpf_ktime_get_boot_ns() & 0xffff;	/* nsecs: boot time, as bpftrace 0.26 */
	unsigned int index = v < 0 ? 0 : v == 0 ? 1 : 2 + log2_u64(v);
	unsigned long long *count = bpf_map_lookup_elem(&buckets, &index);

	if (count)
		*count += 1;
	return 0;
}
