/* The floor of the string-key script: an empty program on sys_enter_openat. */
#include "reference.h"

SEC("tracepoint/syscalls/sys_enter_openat")
int empty(struct openat_enter *ctx)
{
	return 0;
}
