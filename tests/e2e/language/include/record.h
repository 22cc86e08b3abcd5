/* A header for include.pbt: a type and a constant the kernel's BTF does not have. */
#define RECORD_LEN 6
typedef struct record { char name[RECORD_LEN]; unsigned short id; } record_t;
