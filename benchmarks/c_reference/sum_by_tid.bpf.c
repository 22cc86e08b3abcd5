/* @[tid] = sum(args->__syscall_nr) */
#include "reference.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, unsigned long long);
	__type(value, unsigned long long);
} sums SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int sum_by_tid(struct syscall_enter *ctx)
{
	unsigned long long tid = (unsigned int)bpf_get_current_pid_tgid();

	add(&sums, &tid, (long long)ctx->syscall_nr);
	return 0;
}
