// Read by ../include_conditionals.pbt: its conditionals are evaluated as C's preprocessor does,
// over BPFTRACE_HAVE_BTF, the script's #defines above its #include and its own.
#ifndef COND_H
#define COND_H
#ifdef BPFTRACE_HAVE_BTF
#define HAVE_BTF 1
#else
#define HAVE_BTF 0
#endif
#if defined(WIDE) && WIDE > 1
#define PICKED 20
struct pair { int a; long b; };
#else
#define PICKED 10
struct pair { char c; };
#endif
#include "inner.h"
#endif
