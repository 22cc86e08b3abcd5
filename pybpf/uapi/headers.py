"""Constants that C headers #define (so BTF, which holds only types, does not have them) and that
bpftrace's tools use, by the header a script #includes to get them. bpftrace runs clang over the
headers; pybpf reads no C, so a script gets these names when it includes one of their headers.

    #include <linux/socket.h>
    kprobe:tcp_connect { if (((struct sock *)arg0)->__sk_common.skc_family == AF_INET) { ... } }
"""

# include/linux/socket.h (glibc's sys/socket.h has the same values; net/sock.h includes it).
ADDRESS_FAMILIES = {
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_AX25": 3, "AF_IPX": 4,
    "AF_APPLETALK": 5, "AF_NETROM": 6, "AF_BRIDGE": 7, "AF_INET6": 10, "AF_KEY": 15,
    "AF_NETLINK": 16, "AF_PACKET": 17, "AF_CAN": 29, "AF_BLUETOOTH": 31, "AF_VSOCK": 40,
    "AF_XDP": 44, "AF_MCTP": 45,
}

# include/linux/sched.h: the task states of task_struct.__state.
TASK_STATES = {
    "TASK_RUNNING": 0x0000, "TASK_INTERRUPTIBLE": 0x0001, "TASK_UNINTERRUPTIBLE": 0x0002,
    "__TASK_STOPPED": 0x0004, "__TASK_TRACED": 0x0008, "EXIT_DEAD": 0x0010,
    "EXIT_ZOMBIE": 0x0020, "TASK_PARKED": 0x0040, "TASK_DEAD": 0x0080, "TASK_WAKEKILL": 0x0100,
    "TASK_WAKING": 0x0200, "TASK_NOLOAD": 0x0400, "TASK_NEW": 0x0800, "TASK_KILLABLE": 0x0102,
    "TASK_STOPPED": 0x0104, "TASK_TRACED": 0x0008, "TASK_IDLE": 0x0402,
}

BY_HEADER = {
    "linux/socket.h": ADDRESS_FAMILIES,
    "sys/socket.h": ADDRESS_FAMILIES,
    "bits/socket.h": ADDRESS_FAMILIES,
    "net/sock.h": ADDRESS_FAMILIES,
    "linux/sched.h": TASK_STATES,
}


def header_constant(name: str, includes: tuple[str, ...]) -> int | None:
    """The value of `name` if one of the included headers defines it."""
    for header in includes:
        value = BY_HEADER.get(header, {}).get(name)
        if value is not None:
            return value
    return None
