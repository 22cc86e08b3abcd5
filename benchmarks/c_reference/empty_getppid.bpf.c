/* The floor: an empty program on sys_enter_getppid. */
#include "reference.h"

SEC("tracepoint/syscalls/sys_enter_getppid")
int empty(struct syscall_enter *ctx)
{
	return 0;
}
