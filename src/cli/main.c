/*
 * cryo: checkpoint and restore Linux processes. This file dispatches to the
 * subcommands; exit codes are documented in docs/cryo.1 (EXIT STATUS).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "kernel/creds.h"
#include "cryo.h"

static const char usage[] =
	"usage: cryo <command> [options]\n"
	"\n"
	"commands:\n"
	"  checkpoint PID [-o FILE] [--leave-running|--kill|--stop]   save a process to an image\n"
	"  restore FILE [--detach]                                    bring it back, same PID\n"
	"  inspect FILE [--json]                                      show what an image holds\n"
	"  check                                                      probe kernel features\n"
	"\n"
	"Run 'cryo <command> --help' for the options of a command; see cryo(1).\n";

void cli_print_stats(const char *what, const struct cryo_stats *st)
{
	fprintf(stderr, "{\"op\": \"%s\", \"frozen_ms\": %.3f, \"total_ms\": %.3f, "
		"\"image_bytes\": %llu, \"pages\": %llu, \"processes\": %u, \"threads\": %u, "
		"\"precopy_pages\": %llu}\n",
		what, st->frozen_ns / 1e6, st->total_ns / 1e6, (unsigned long long)st->image_bytes,
		(unsigned long long)st->pages, st->processes, st->threads,
		(unsigned long long)st->precopy_pages);
}

int cli_exit_code(int status)
{
	return status < 0 ? -status : status;
}

int main(int argc, char **argv)
{
	int ret;
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "checkpoint", cmd_checkpoint },
		{ "restore", cmd_restore },
		{ "inspect", cmd_inspect },
		{ "check", cmd_check },
	};

	if (argc < 2) {
		fputs(usage, stderr);
		return cli_exit_code(CRYO_EUSAGE);
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("cryo %s\n", CRYO_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		/* before any file is opened: a restricted cryo uses the caller's rights */
		ret = creds_init();
		return ret ? cli_exit_code(ret) : cmds[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "cryo: unknown command '%s'\n\n%s", argv[1], usage);
	return cli_exit_code(CRYO_EUSAGE);
}
