/*
 * cryo restore: bring a process back from an image with its original PID.
 * In the foreground (default) cryo stays the restored process's parent,
 * forwards the usual terminal/control signals to it and exits with its
 * status, like BLCR's cr_restart.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/cli.h"
#include "cryo.h"

#define EXIT_SIGNAL_BASE 128
#define MAX_INHERIT 64

static const char usage[] =
	"usage: cryo restore FILE [--detach] [--inherit-fd PID:FD=OURS]... [--hangup-external]\n"
	"\n"
	"Restore the process saved in FILE with its original PID.\n"
	"  --detach    print the restored PID and return once it runs; it is\n"
	"              reparented to init (or the nearest subreaper)\n"
	"  --inherit-fd PID:FD=OURS\n"
	"              fd FD of task PID, saved as external (checkpoint --external),\n"
	"              becomes a copy of our descriptor OURS\n"
	"  --hangup-external\n"
	"              every other external fd becomes the same end of a pipe whose\n"
	"              other end is closed (reads see EOF, writes EPIPE)\n"
	"  --stats     print timings as one JSON line on stderr\n"
	"  -h, --help  this help\n"
	"Without --detach cryo waits for the process, forwards SIGINT, SIGTERM,\n"
	"SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it, and exits with its exit status\n"
	"(or 128+signal).\n";

static volatile pid_t restored_pid;
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void forward(int sig)
{
	if (restored_pid > 0)
		kill(restored_pid, sig);
}

static int wait_restored(pid_t pid)
{
	struct sigaction sa;
	int st = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sa.sa_flags = SA_RESTART;
	restored_pid = pid;
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	/* images of a group or session may give us several children: wait for all */
	for (;;) {
		int any;
		pid_t got = waitpid(-1, &any, 0);

		if (got == pid)
			st = any;
		if (got >= 0 || errno == EINTR)
			continue;
		if (errno == ECHILD)
			break;
		perror("cryo: restore: waitpid");
		return cli_exit_code(CRYO_EINTERNAL);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return EXIT_SIGNAL_BASE + WTERMSIG(st);
}

int cmd_restore(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "detach", no_argument, NULL, 'd' },
		{ "stats", no_argument, NULL, 's' },
		{ "inherit-fd", required_argument, NULL, 'i' },
		{ "hangup-external", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct cryo_restore_opts opts = { 0 };
	struct cryo_inherit_fd inherit[MAX_INHERIT];
	int nr_inherit = 0;
	struct cryo_stats stats;
	pid_t pid = 0;
	int c, ret;

	while ((c = getopt_long(argc, argv, "dh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			opts.detach = 1;
			break;
		case 's':
			opts.stats = &stats;
			break;
		case 'i': {
			struct cryo_inherit_fd in;
			char tail;

			if (nr_inherit == MAX_INHERIT ||
			    sscanf(optarg, "%d:%d=%d%c", &in.pid, &in.fd, &in.from, &tail) != 3 ||
			    in.pid <= 0 || in.fd < 0 || in.from < 0) {
				fprintf(stderr, "cryo: restore: --inherit-fd wants PID:FD=OURS, not "
					"'%s'\n", optarg);
				return cli_exit_code(CRYO_EUSAGE);
			}
			inherit[nr_inherit++] = in;
			break;
		}
		case 'H':
			opts.hangup_external = 1;
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
	opts.image = argv[optind];
	opts.inherit = inherit;
	opts.nr_inherit = nr_inherit;
	ret = cryo_restore(&opts, &pid);
	if (ret)
		return cli_exit_code(ret);
	if (opts.stats)
		cli_print_stats("restore", &stats);
	if (opts.detach) {
		printf("%d\n", pid);
		return 0;
	}
	return wait_restored(pid);
}
