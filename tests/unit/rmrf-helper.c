/* tests/unit/rmrf-helper.c - fs_rm_rf(argv[1]) for tests/integration/saferm.sh.
 * Exit 0 when removed, 1 with the error on stderr otherwise. */
#include <string.h>

#include "common/common.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: rmrf-helper PATH\n");
		return 2;
	}
	struct err e = ERR_INIT;
	int r = fs_rm_rf(argv[1], &e);
	if (r < 0) {
		fprintf(stderr, "rmrf-helper: %s (%s)\n", err_msg(&e), strerror(-r));
		err_free(&e);
		return 1;
	}
	return 0;
}
