/*
 * tests/unit/sbom-helper.c ROOT json|spdx|cyclonedx - prints the bill of
 * materials of a root tree, for tests/integration/sbom.sh (which checks it
 * against the schemas) before a package carries one.
 */
#include <string.h>

#include "package/package.h"

int main(int argc, char **argv)
{
	struct err e = ERR_INIT;
	struct sbom s;
	struct buf out = BUF_INIT;
	struct sbom_subject subj = { .name = "fixture", .version = "20261120T214500Z-3f9a2c1",
				     .created = "2026-11-20T21:45:00Z",
				     .tool_version = PACKAGE_VERSION };

	if (argc != 3) {
		fprintf(stderr, "usage: sbom-helper ROOT json|spdx|cyclonedx\n");
		return 2;
	}
	if (sbom_scan(&s, argv[1], &e) < 0) {
		fprintf(stderr, "sbom-helper: %s\n", err_msg(&e));
		return 1;
	}
	if (!strcmp(argv[2], "spdx"))
		sbom_spdx(&s, &subj, &out);
	else if (!strcmp(argv[2], "cyclonedx"))
		sbom_cyclonedx(&s, &subj, &out);
	else
		sbom_json(&s, &out);
	fputs(out.p, stdout);
	buf_free(&out);
	sbom_free(&s);
	return 0;
}
