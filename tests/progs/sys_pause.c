/*
 * sys_pause: checkpointed inside pause(). pause returns -ERESTARTNOHAND to
 * the kernel: restarted when no handler runs (the checkpoint), EINTR when
 * one does, even with SA_RESTART (set here on purpose: a restore must not
 * turn it into a restart). After SIGTERM: pause returned -1/EINTR, and
 * not before.
 */
#include "testlib.h"

int main(void)
{
	int r, err;

	install_sigterm(SA_RESTART);
	ready();
	r = pause();
	err = errno;
	if (!got_sigterm) {
		char why[128];
		snprintf(why, sizeof(why), "pause returned %d (%s) before SIGTERM", r,
			 r ? strerror(err) : "no error");
		wait_for_sigterm();
		fail("%s", why);
	}
	CHECK(r == -1 && err == EINTR, "pause returned %d (%s), want -1 (EINTR)", r,
	      r ? strerror(err) : "no error");
	pass();
}
