/* /pid == 1/ { @ = count(); } on a process that is never pid 1 */
#include "reference.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, unsigned int);
	__type(value, unsigned long long);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int rejecting_predicate(struct syscall_enter *ctx)
{
	unsigned int zero = 0;
	unsigned long long *count;

	if (bpf_get_current_pid_tgid() >> 32 != 1)
		return 0;
	count = bpf_map_lookup_elem(&counts, &zero);
	if (count)
		*count += 1;
	return 0;
}
