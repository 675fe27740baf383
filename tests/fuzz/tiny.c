/*
 * The seed program of the fuzz corpus: as small an image as a process tree
 * can make (no libc: a few pages), yet with most kinds of table entries: a
 * child process, a zombie, a pipe holding data, an ignored signal, a
 * blocked pending signal. Built with -static -nostdlib by tests/fuzz/run.sh,
 * checkpointed, never restored. Prints READY, then sleeps until killed.
 */
#define NR_write 1
#define NR_rt_sigaction 13
#define NR_rt_sigprocmask 14
#define NR_pipe 22
#define NR_pause 34
#define NR_getpid 39
#define NR_fork 57
#define NR_exit 60
#define NR_kill 62
#define SIGUSR1 10
#define SIGUSR2 12
#define SIG_IGN 1
#define SIG_BLOCK 0
#define ZOMBIE_STATUS 3

static long sys(long nr, long a, long b, long c, long d)
{
	long ret;
	register long r10 __asm__("r10") = d;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

static void __attribute__((noreturn)) sleep_forever(void)
{
	for (;;)
		sys(NR_pause, 0, 0, 0, 0);
}

void __attribute__((noreturn)) _start(void)
{
	struct {
		unsigned long handler, flags, restorer, mask;
	} ign = { SIG_IGN, 0, 0, 0 };
	unsigned long block = 1ul << (SIGUSR2 - 1);
	int p[2];

	sys(NR_pipe, (long)p, 0, 0, 0);
	sys(NR_write, p[1], (long)"data", 4, 0);
	sys(NR_rt_sigaction, SIGUSR1, (long)&ign, 0, sizeof(block));
	sys(NR_rt_sigprocmask, SIG_BLOCK, (long)&block, 0, sizeof(block));
	sys(NR_kill, sys(NR_getpid, 0, 0, 0, 0), SIGUSR2, 0, 0);
	if (sys(NR_fork, 0, 0, 0, 0) == 0)
		sys(NR_exit, ZOMBIE_STATUS, 0, 0, 0);
	if (sys(NR_fork, 0, 0, 0, 0) == 0)
		sleep_forever();
	sys(NR_write, 1, (long)"READY\n", 6, 0);
	sleep_forever();
}
