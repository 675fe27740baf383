/* cryo checkpoint: save a running process to an image. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cryo.h"

static const char usage[] =
	"usage: cryo checkpoint ID [-o FILE] [--tree | --pid | --pgid | --sid]\n"
	"                       [--leave-running | --kill | --stop] [--no-sync] [--external]\n"
	"                       [--pre-copy[=auto|always|never] | --no-pre-copy]\n"
	"\n"
	"Freeze the processes ID names (with all their threads), write their whole\n"
	"state to FILE (default: ID.cryo) and then:\n"
	"  --leave-running  let it continue (default, as BLCR did)\n"
	"  --kill           kill it, once the image is safely on disk\n"
	"  --stop           leave it stopped (SIGSTOP)\n"
	"  --tree           ID is a PID: take it and all its descendants (default)\n"
	"  --pid            ID is a PID: take it alone (refused if it has children)\n"
	"  --pgid           ID is a process group: take every process in it\n"
	"  --sid            ID is a session: take every process in it\n"
	"                   (--pgid, --sid: refused if a member has a child outside)\n"
	"  -o, --output FILE  image path; written to a temporary name, fsynced, renamed\n"
	"  --no-sync        do not fsync the image (faster, not crash-safe)\n"
	"  --external       save pipes and FIFOs leading outside (on fds above 2) as\n"
	"                   external instead of refusing; see restore --inherit-fd\n"
	"  --stats          print timings and sizes as one JSON line on stderr\n"
	"  --compress[=zstd[:LEVEL]|lz4|none]\n"
	"                   compress memory pages, chunk by chunk (--compress alone: zstd;\n"
	"                   default: none, fastest on tmpfs and fast disks)\n"
	"  --pre-copy[=auto|always|never]\n"
	"                   copy memory while the processes still run, then freeze them\n"
	"                   for what changed meanwhile only (default auto: from 64 MiB of\n"
	"                   anonymous memory; --pre-copy alone: always)\n"
	"  --no-pre-copy    the same as --pre-copy=never\n"
	"  -h, --help       this help\n";

static int parse_precopy(const char *arg, struct cryo_checkpoint_opts *opts)
{
	if (!arg || !strcmp(arg, "always"))
		opts->precopy = CRYO_PRECOPY_ALWAYS;
	else if (!strcmp(arg, "never"))
		opts->precopy = CRYO_PRECOPY_NEVER;
	else if (!strcmp(arg, "auto"))
		opts->precopy = CRYO_PRECOPY_AUTO;
	else {
		fprintf(stderr, "cryo: checkpoint: unknown --pre-copy mode '%s' (auto, always, "
			"never)\n", arg);
		return -1;
	}
	return 0;
}

static int parse_compress(const char *arg, struct cryo_checkpoint_opts *opts)
{
	char *end;

	if (!arg || !strcmp(arg, "zstd")) {
		opts->compress = 1;
	} else if (!strncmp(arg, "zstd:", 5)) {
		opts->compress = 1;
		opts->compress_level = strtol(arg + 5, &end, 10);
		/* negative: zstd's fast levels (--fast=N of the zstd tool); 0 is ambiguous */
		if (!arg[5] || *end || opts->compress_level < -50 || opts->compress_level > 19 ||
		    !opts->compress_level) {
			fprintf(stderr, "cryo: checkpoint: zstd level must be 1..19 or -1..-50, "
				"not '%s'\n", arg + 5);
			return -1;
		}
	} else if (!strcmp(arg, "lz4")) {
		opts->compress = 2;
	} else if (!strcmp(arg, "none")) {
		opts->compress = 0;
	} else {
		fprintf(stderr, "cryo: checkpoint: unknown compression '%s' (zstd[:LEVEL], lz4, "
			"none)\n", arg);
		return -1;
	}
	return 0;
}

int cmd_checkpoint(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "leave-running", no_argument, NULL, 'L' },
		{ "kill", no_argument, NULL, 'K' },
		{ "external", no_argument, NULL, 'E' },
		{ "stop", no_argument, NULL, 'S' },
		{ "no-sync", no_argument, NULL, 'N' },
		{ "tree", no_argument, NULL, 'T' },
		{ "compress", optional_argument, NULL, 'C' },
		{ "stats", no_argument, NULL, 'S' + 256 },
		{ "pid", no_argument, NULL, 'P' },
		{ "pgid", no_argument, NULL, 'G' },
		{ "sid", no_argument, NULL, 'I' },
		{ "pre-copy", optional_argument, NULL, 'R' },
		{ "no-pre-copy", no_argument, NULL, 'R' + 256 },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cryo_checkpoint_opts opts = { 0 };
	struct cryo_stats stats;
	int ret;
	char defname[64];
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			opts.output = optarg;
			break;
		case 'L':
			opts.after = CRYO_LEAVE_RUNNING;
			break;
		case 'K':
			opts.after = CRYO_KILL;
			break;
		case 'E':
			opts.external = 1;
			break;
		case 'S':
			opts.after = CRYO_STOP;
			break;
		case 'N':
			opts.no_sync = 1;
			break;
		case 'T':
			opts.scope = CRYO_SCOPE_TREE;
			break;
		case 'S' + 256:
			opts.stats = &stats;
			break;
		case 'C':
			if (parse_compress(optarg, &opts))
				return cli_exit_code(CRYO_EUSAGE);
			break;
		case 'P':
			opts.scope = CRYO_SCOPE_PID;
			break;
		case 'G':
			opts.scope = CRYO_SCOPE_PGID;
			break;
		case 'I':
			opts.scope = CRYO_SCOPE_SID;
			break;
		case 'R':
			if (parse_precopy(optarg, &opts))
				return cli_exit_code(CRYO_EUSAGE);
			break;
		case 'R' + 256:
			opts.precopy = CRYO_PRECOPY_NEVER;
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
	opts.pid = strtol(argv[optind], &end, 10);
	if (*end || opts.pid <= 0) {
		fprintf(stderr, "cryo: checkpoint: '%s' is not a process, group or session ID\n",
			argv[optind]);
		return cli_exit_code(CRYO_EUSAGE);
	}
	if (!opts.output) {
		snprintf(defname, sizeof(defname), "%d.cryo", opts.pid);
		opts.output = defname;
	}
	ret = cryo_checkpoint(&opts);
	if (!ret && opts.stats)
		cli_print_stats("checkpoint", &stats);
	return cli_exit_code(ret);
}
