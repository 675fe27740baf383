/* cryo check: probe the kernel features cryo needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cryo.h"
#include "util/util.h"

static const char usage[] =
	"usage: cryo check\n"
	"\n"
	"Probe the running kernel for every feature cryo needs and print one line\n"
	"per feature (ok / MISSING). Exits 0 when all required features work, 72\n"
	"otherwise.\n";

int cmd_check(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc > 1) {
		fputs(usage, stderr);
		return 64;
	}
	if (secure_getenv("CRYO_FAULT") && !strcmp(secure_getenv("CRYO_FAULT"), "list")) {
		fault_list(stdout);
		return 0;
	}
	return cli_exit_code(cryo_check(stdout));
}
