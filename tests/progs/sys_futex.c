/*
 * sys_futex: checkpointed inside FUTEX_WAIT (no timeout) on a private word
 * that holds a value a fresh process would not have. The kernel shows
 * -ERESTARTSYS: the restore re-runs the wait (same address, same expected
 * value, read again from the restored memory). The SIGTERM handler has no
 * SA_RESTART, so after SIGTERM the wait returns -1/EINTR, and not before
 * (EAGAIN would mean the word changed; 0 a wakeup nobody sent).
 */
#include "testlib.h"

#include <linux/futex.h>
#include <sys/syscall.h>

#define VALUE 0x5eed1234

static int word = VALUE;

int main(void)
{
	long r;
	int err;

	install_sigterm(0);
	ready();
	r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, VALUE, NULL, NULL, 0);
	err = errno;
	if (!got_sigterm) {
		char why[128];
		snprintf(why, sizeof(why), "FUTEX_WAIT returned %ld (%s) before SIGTERM", r,
			 r ? strerror(err) : "no error");
		wait_for_sigterm();
		fail("%s", why);
	}
	CHECK(r == -1 && err == EINTR, "FUTEX_WAIT returned %ld (%s), want -1 (EINTR)", r,
	      r ? strerror(err) : "no error");
	CHECK_EQ_U64("futex word", VALUE, word);
	pass();
}
