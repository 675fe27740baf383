/* The cryo command: one file per subcommand; each parses options and calls libcryo. */
#ifndef CRYO_CLI_H
#define CRYO_CLI_H

int cmd_checkpoint(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_check(int argc, char **argv);

struct cryo_stats;
void cli_print_stats(const char *what, const struct cryo_stats *st);

/* Exit code for a libcryo status. */
int cli_exit_code(int status);

#endif
