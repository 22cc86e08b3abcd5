/* @[pid, comm] = sum(args->__syscall_nr) */
#include "reference.h"

struct pid_comm_key {
	unsigned long long pid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct pid_comm_key);
	__type(value, unsigned long long);
} sums SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int sum_by_pid_comm(struct syscall_enter *ctx)
{
	struct pid_comm_key key;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(key.comm, sizeof key.comm);
	add(&sums, &key, (long long)ctx->syscall_nr);
	return 0;
}
