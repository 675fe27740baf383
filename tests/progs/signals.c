/*
 * signals: dispositions, the blocked mask, pending signals with their
 * siginfo, and the alternate stack.
 *
 * Dispositions (flags and masks all differ, none is the default):
 *   SIGUSR1      SA_SIGINFO|SA_NODEFER                  blocked, pending (raise x2)
 *   SIGUSR2      SA_SIGINFO|SA_RESTART, mask INT QUIT RT+7  blocked, pending (sigqueue 777)
 *   SIGHUP       plain, SA_RESETHAND|SA_NODEFER
 *   SIGWINCH     SA_ONSTACK|SA_RESTART (altstack, SS_AUTODISARM)
 *   SIGCHLD      SA_NOCLDSTOP
 *   SIGALRM      plain, mask = every signal
 *   SIGINT, SIGPIPE  SIG_IGN
 *   SIGRTMIN+3   SA_SIGINFO                             blocked, 3 queued (101, 102, 103)
 *   SIGRTMIN+5   SA_SIGINFO|SA_RESTART                  blocked, kill() then sigqueue(555)
 *   SIGRTMIN+7   default                                blocked, not pending
 *   SIGQUIT      default                                blocked, not pending
 * raise() queues SIGUSR1 on the thread (SI_TKILL, shows in SigPnd); kill()
 * and sigqueue() on the process (SI_USER, SI_QUEUE, shows in ShdPnd).
 *
 * After SIGTERM: every sigaction as set (SA_RESTORER, which libc adds, is
 * ignored), the blocked mask, sigpending, SigPnd/ShdPnd, sigaltstack; then
 * signals are unblocked one by one: SIGRTMIN+3 must come three times in
 * queue order with values and si_code SI_QUEUE, SIGRTMIN+5 twice (SI_USER
 * first, then SI_QUEUE 555), SIGUSR2 once (SI_QUEUE 777), SIGUSR1 once
 * (SI_TKILL: two raises of a standard signal are one); si_pid/si_uid are
 * ours. Then SIGWINCH must run on the alternate stack, SIGHUP's handler
 * must reset itself to SIG_DFL, and SIGINT must be ignored.
 */
#include "testlib.h"

#include <sys/mman.h>

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000	/* added by libc to every sigaction */
#endif
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define ALTSTACK_SIZE (64 * 1024)
#define MAXREC 32

struct rec {
	int sig, code, value, pid, uid;
};

static volatile int nrec;
static struct rec recs[MAXREC];
static volatile int winch_ok, winch_ran, hup_ran;
static unsigned char *altstack;

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (nrec < MAXREC)
		recs[nrec] = (struct rec){ sig, si->si_code, si->si_value.sival_int, si->si_pid,
					   (int)si->si_uid };
	nrec++;
}

static void on_plain(int sig) { (void)sig; }

static void on_hup(int sig)
{
	(void)sig;
	hup_ran++;
}

static void on_winch(int sig)
{
	volatile char local;
	stack_t ss;

	(void)sig;
	winch_ran++;
	/* on the alternate stack; SS_AUTODISARM: disarmed while we run */
	if ((unsigned char *)&local >= altstack && (unsigned char *)&local < altstack + ALTSTACK_SIZE &&
	    sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE))
		winch_ok = 1;
}

struct disp {
	int sig;
	void *handler;	/* function, SIG_IGN or SIG_DFL */
	int flags;
	int mask[4];	/* signals in sa_mask, 0-terminated; -1: every signal */
};

#define RT(n) (SIGRTMIN + (n))

static struct disp disps[16];
static int ndisps;

static void add(int sig, void *handler, int flags, int m0, int m1, int m2)
{
	disps[ndisps++] = (struct disp){ sig, handler, flags, { m0, m1, m2, 0 } };
}

static void set_dispositions(void)
{
	add(SIGUSR1, (void *)on_info, SA_SIGINFO | SA_NODEFER, 0, 0, 0);
	add(SIGUSR2, (void *)on_info, SA_SIGINFO | SA_RESTART, SIGINT, SIGQUIT, RT(7));
	add(SIGHUP, (void *)on_hup, SA_RESETHAND | SA_NODEFER, 0, 0, 0);
	add(SIGWINCH, (void *)on_winch, SA_ONSTACK | SA_RESTART, 0, 0, 0);
	add(SIGCHLD, (void *)on_plain, SA_NOCLDSTOP, 0, 0, 0);
	add(SIGALRM, (void *)on_plain, 0, -1, 0, 0);
	add(SIGINT, (void *)SIG_IGN, 0, 0, 0, 0);
	add(SIGPIPE, (void *)SIG_IGN, 0, 0, 0, 0);
	add(RT(3), (void *)on_info, SA_SIGINFO, SIGUSR1, 0, 0);
	add(RT(5), (void *)on_info, SA_SIGINFO | SA_RESTART, 0, 0, 0);
	for (int i = 0; i < ndisps; i++) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = disps[i].handler;
		sa.sa_flags = disps[i].flags;
		sigemptyset(&sa.sa_mask);
		if (disps[i].mask[0] == -1)
			sigfillset(&sa.sa_mask);
		for (int j = 0; disps[i].mask[j] > 0; j++)
			sigaddset(&sa.sa_mask, disps[i].mask[j]);
		SYS(sigaction(disps[i].sig, &sa, NULL));
	}
}

static void check_dispositions(void)
{
	for (int i = 0; i < ndisps; i++) {
		struct disp *d = &disps[i];
		struct sigaction sa;
		sigset_t want;
		int sig = d->sig;

		CHECK(sigaction(sig, NULL, &sa) == 0, "sigaction(%d): %s", sig, strerror(errno));
		CHECK(sa.sa_sigaction == d->handler, "signal %d (%s): handler %p, want %p", sig,
		      strsignal(sig), (void *)sa.sa_sigaction, d->handler);
		CHECK((sa.sa_flags & ~SA_RESTORER) == d->flags,
		      "signal %d (%s): sa_flags %#x (without SA_RESTORER), want %#x", sig,
		      strsignal(sig), sa.sa_flags & ~SA_RESTORER, d->flags);
		sigemptyset(&want);
		if (d->mask[0] == -1) {
			sigfillset(&want);
			sigdelset(&want, SIGKILL);	/* the kernel never keeps these */
			sigdelset(&want, SIGSTOP);
			sigdelset(&sa.sa_mask, SIGKILL);
			sigdelset(&sa.sa_mask, SIGSTOP);
		}
		for (int j = 0; d->mask[j] > 0; j++)
			sigaddset(&want, d->mask[j]);
		int s = sigset_first_diff(&sa.sa_mask, &want);
		CHECK(!s, "signal %d (%s): sa_mask has signal %d %s", sig, strsignal(sig), s,
		      sigismember(&want, s) ? "missing" : "in excess");
	}
	/* and the ones left alone are still the default */
	struct sigaction sa;
	CHECK(sigaction(RT(7), NULL, &sa) == 0 && sa.sa_handler == SIG_DFL,
	      "SIGRTMIN+7: handler %p, want SIG_DFL", (void *)sa.sa_handler);
}

static sigset_t blocked;

static void set_from(sigset_t *set, const int *sigs, int n)
{
	sigemptyset(set);
	for (int i = 0; i < n; i++)
		sigaddset(set, sigs[i]);
}

static void expect_set(const char *what, const sigset_t *want, const sigset_t *got)
{
	int s = sigset_first_diff(want, got);

	if (s)
		fail("%s: signal %d (%s) is %s, want %s", what, s, strsignal(s),
		     sigismember(got, s) ? "in" : "not in", sigismember(want, s) ? "in" : "not in");
}

/* SigPnd/ShdPnd of /proc/self/status as a 64-bit mask */
static unsigned long long status_mask(const char *key)
{
	char v[64];

	if (proc_status(key, v, sizeof(v)))
		fail("no %s in /proc/self/status", key);
	return strtoull(v, NULL, 16);
}

static unsigned long long bit(int sig) { return 1ULL << (sig - 1); }

static void expect_rec(int i, int sig, int code, int value)
{
	CHECK(nrec > i, "delivery %d: missing (only %d deliveries), want signal %d", i, nrec, sig);
	struct rec *r = &recs[i];
	CHECK(r->sig == sig, "delivery %d: signal %d, want %d", i, r->sig, sig);
	CHECK(r->code == code, "delivery %d (signal %d): si_code %d, want %d", i, sig, r->code, code);
	if (code == SI_QUEUE)
		CHECK(r->value == value, "delivery %d (signal %d): si_value %d, want %d", i, sig,
		      r->value, value);
	CHECK(r->pid == getpid(), "delivery %d (signal %d): si_pid %d, want %d", i, sig, r->pid,
	      getpid());
	CHECK(r->uid == (int)getuid(), "delivery %d (signal %d): si_uid %d, want %d", i, sig, r->uid,
	      (int)getuid());
}

static void unblock(int sig)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, sig);
	CHECK(sigprocmask(SIG_UNBLOCK, &s, NULL) == 0, "sigprocmask: %s", strerror(errno));
}

int main(void)
{
	static const int blocked_sigs[] = { SIGUSR1, SIGUSR2, SIGQUIT, 0, 0, 0 };
	int bl[6];
	stack_t ss;
	sigset_t got, want_pending;

	install_sigterm(SA_RESTART);
	set_dispositions();
	memcpy(bl, blocked_sigs, sizeof(bl));
	bl[3] = RT(3);
	bl[4] = RT(5);
	bl[5] = RT(7);
	set_from(&blocked, bl, 6);
	SYS(sigprocmask(SIG_SETMASK, &blocked, NULL));

	altstack = (void *)SYS(mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	ss.ss_sp = altstack;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = (int)SS_AUTODISARM;
	SYS(sigaltstack(&ss, NULL));

	/* pending, in this order */
	SYS(raise(SIGUSR1));
	SYS(raise(SIGUSR1));
	SYS(sigqueue(getpid(), SIGUSR2, (union sigval){ .sival_int = 777 }));
	for (int v = 101; v <= 103; v++)
		SYS(sigqueue(getpid(), RT(3), (union sigval){ .sival_int = v }));
	SYS(kill(getpid(), RT(5)));
	SYS(sigqueue(getpid(), RT(5), (union sigval){ .sival_int = 555 }));
	if (nrec)
		fail("setup: a blocked signal was delivered");

	ready();
	wait_for_sigterm();

	check_dispositions();
	CHECK(sigprocmask(SIG_SETMASK, NULL, &got) == 0, "sigprocmask: %s", strerror(errno));
	expect_set("blocked mask", &blocked, &got);
	int pend[] = { SIGUSR1, SIGUSR2, RT(3), RT(5) };
	set_from(&want_pending, pend, 4);
	CHECK(sigpending(&got) == 0, "sigpending: %s", strerror(errno));
	expect_set("sigpending", &want_pending, &got);
	CHECK_EQ_U64("SigPnd (pending for the thread) in /proc/self/status", bit(SIGUSR1),
		     status_mask("SigPnd"));
	CHECK_EQ_U64("ShdPnd (pending for the process) in /proc/self/status",
		     bit(SIGUSR2) | bit(RT(3)) | bit(RT(5)), status_mask("ShdPnd"));

	CHECK(sigaltstack(NULL, &ss) == 0, "sigaltstack: %s", strerror(errno));
	CHECK(ss.ss_sp == altstack, "sigaltstack ss_sp %p, want %p", ss.ss_sp, (void *)altstack);
	CHECK_EQ_U64("sigaltstack ss_size", ALTSTACK_SIZE, ss.ss_size);
	CHECK_EQ_U64("sigaltstack ss_flags", SS_AUTODISARM, (unsigned)ss.ss_flags);

	CHECK(nrec == 0, "%d signals delivered while blocked (first: %d)", nrec, recs[0].sig);
	unblock(RT(3));
	CHECK(nrec == 3, "SIGRTMIN+3: %d deliveries, want 3", nrec);
	expect_rec(0, RT(3), SI_QUEUE, 101);
	expect_rec(1, RT(3), SI_QUEUE, 102);
	expect_rec(2, RT(3), SI_QUEUE, 103);
	unblock(RT(5));
	CHECK(nrec == 5, "SIGRTMIN+5: %d deliveries, want 2", nrec - 3);
	expect_rec(3, RT(5), SI_USER, 0);
	expect_rec(4, RT(5), SI_QUEUE, 555);
	unblock(SIGUSR2);
	CHECK(nrec == 6, "SIGUSR2: %d deliveries, want 1", nrec - 5);
	expect_rec(5, SIGUSR2, SI_QUEUE, 777);
	unblock(SIGUSR1);
	CHECK(nrec == 7, "SIGUSR1: %d deliveries, want 1 (two raises of a standard signal are one)",
	      nrec - 6);
	expect_rec(6, SIGUSR1, SI_TKILL, 0);
	CHECK(sigpending(&got) == 0, "sigpending: %s", strerror(errno));
	sigemptyset(&want_pending);
	expect_set("sigpending after the deliveries", &want_pending, &got);

	raise(SIGWINCH);
	CHECK(winch_ran == 1, "SIGWINCH handler ran %d times, want 1", winch_ran);
	CHECK(winch_ok, "SIGWINCH handler did not run on the alternate stack (SS_AUTODISARM)");
	CHECK(sigaltstack(NULL, &ss) == 0 && ss.ss_sp == altstack &&
		      (unsigned)ss.ss_flags == SS_AUTODISARM,
	      "sigaltstack after the SIGWINCH handler: sp %p flags %#x", ss.ss_sp, ss.ss_flags);

	raise(SIGHUP);
	CHECK(hup_ran == 1, "SIGHUP handler ran %d times, want 1", hup_ran);
	struct sigaction sa;
	CHECK(sigaction(SIGHUP, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL,
	      "SIGHUP after its SA_RESETHAND handler ran: handler %p, want SIG_DFL",
	      (void *)sa.sa_handler);

	raise(SIGINT);	/* ignored, or we die here */
	pass();
}
