/* cryo inspect: print what an image holds, as text or JSON. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cryo.h"

static const char usage[] =
	"usage: cryo inspect FILE [--json]\n"
	"\n"
	"Validate the image FILE and print its tasks, memory areas, descriptors and\n"
	"signal state.\n"
	"  --json      one JSON document instead of text\n"
	"  -h, --help  this help\n";

int cmd_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c, json = 0;

	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return cli_exit_code(CRYO_EUSAGE);
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return cli_exit_code(CRYO_EUSAGE);
	}
	return cli_exit_code(cryo_inspect(argv[optind], stdout, json));
}
