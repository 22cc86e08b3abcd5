/* @[str(args->filename)] = count(): a 64-byte string key, zero-padded. */
#include "reference.h"

struct path_key {
	char path[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct path_key);
	__type(value, unsigned long long);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int str_key(struct openat_enter *ctx)
{
	struct path_key key = {};

	bpf_probe_read_user_str(key.path, sizeof key.path, ctx->filename);
	add(&counts, &key, 1);
	return 0;
}
