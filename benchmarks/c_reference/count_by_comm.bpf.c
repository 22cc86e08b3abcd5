/* @[comm] = count() */
#include "reference.h"

struct comm_key {
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct comm_key);
	__type(value, unsigned long long);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_by_comm(struct syscall_enter *ctx)
{
	struct comm_key key;

	bpf_get_current_comm(key.comm, sizeof key.comm);
	add(&counts, &key, 1);
	return 0;
}
