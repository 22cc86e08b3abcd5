/* Loads a clang-built BPF object with libbpf, attaches each of its programs by its section name,
   then holds them until SIGINT or SIGTERM: the C side of benchmarks/kernel_cost.py.
   Usage: loader OBJECT.o */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = 1;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	int status = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJECT.o\n", argv[0]);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "cannot open %s\n", argv[1]);
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		goto out;
	}
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "cannot attach %s\n", bpf_program__section_name(prog));
			goto out;
		}
	}
	printf("attached\n");
	fflush(stdout);
	while (!stopping)
		pause();
	status = 0;
out:
	bpf_object__close(obj);    /* the links are left to the process's exit, which closes them */
	return status;
}
