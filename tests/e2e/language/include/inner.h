// Included by cond.h: PICKED, which cond.h defined above its #include, decides.
#if PICKED == 20
#define INNER 7
#else
#define INNER 8
#include "absent_and_never_looked_for.h"
#endif
