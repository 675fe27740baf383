/*
 * Unit test of the credential rules (src/kernel/creds.c) that keep a
 * privileged cryo acting for its caller: a task with exactly the caller's
 * credentials passes; every kind of difference (each uid and gid, groups,
 * each capability set, bounding set, securebits, no_new_privs, dumpable)
 * is named; what is no difference (group order and duplicates, keepcaps)
 * passes. Runs as whoever starts it: the caller is this process.
 *
 * Prints PASS and exits 0, or prints "FAIL: why" and exits 1.
 */
#include <linux/securebits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/creds.h"

static struct cryo_img_task base;

static void fail(int line, const char *what, const char *why)
{
	printf("FAIL: line %d: %s (%s)\n", line, what, why);
	exit(1);
}

/* t must pass (want 0) or be refused with a reason containing word. */
static void expect(int line, const struct cryo_img_task *t, int at_checkpoint, const char *word)
{
	char why[160] = "";
	int r = creds_mismatch(t, at_checkpoint, why, sizeof(why));

	if (!word && r)
		fail(line, "refused, want accepted", why);
	if (word && !r)
		fail(line, "accepted, want refused", word);
	if (word && !strstr(why, word))
		fail(line, "refused for another reason", why);
}
#define EXPECT(t, ckpt, word) expect(__LINE__, t, ckpt, word)

int main(void)
{
	const struct creds_caller *me;
	struct cryo_img_task t;

	if (creds_init()) {
		printf("FAIL: creds_init\n");
		return 1;
	}
	me = creds_caller();
	for (int i = 0; i < 4; i++) {
		base.uid[i] = me->uid;
		base.gid[i] = me->gid;
	}
	base.ngroups = me->ngroups;
	memcpy(base.groups, me->groups, me->ngroups * sizeof(uint32_t));
	base.cap_prm = base.cap_eff = me->caps;
	base.cap_inh = me->cap_inh;
	base.cap_bnd = me->cap_bnd;
	base.securebits = me->securebits;
	base.no_new_privs = me->no_new_privs;
	base.dumpable = 1;

	EXPECT(&base, 1, NULL);
	EXPECT(&base, 0, NULL);
	for (int i = 0; i < 4; i++) {
		t = base;
		t.uid[i] = me->uid + 1;
		EXPECT(&t, 0, "uid");
		t = base;
		t.gid[i] = me->gid + 1;
		EXPECT(&t, 1, "gid");
	}
	/* groups are a set: order and duplicates do not matter, a new one does */
	t = base;
	if (t.ngroups >= 2) {
		uint32_t g = t.groups[0];

		t.groups[0] = t.groups[1];
		t.groups[1] = g;
	}
	if (t.ngroups && t.ngroups < CRYO_MAX_GROUPS)
		t.groups[t.ngroups++] = t.groups[0];
	EXPECT(&t, 0, NULL);
	t = base;
	if (t.ngroups < CRYO_MAX_GROUPS) {
		t.groups[t.ngroups++] = 4242424;
		EXPECT(&t, 0, "groups");
	}
	t = base;
	t.ngroups = CRYO_MAX_GROUPS + 1;
	EXPECT(&t, 0, "groups");

	/* a capability the caller does not hold, in any set that grants it */
	if (~me->caps) {
		uint64_t extra = ~me->caps & -~me->caps;	/* lowest missing */

		t = base;
		t.cap_prm |= extra;
		EXPECT(&t, 1, "capabilities");
		t = base;
		t.cap_eff |= extra;
		EXPECT(&t, 0, "capabilities");
		t = base;
		t.cap_amb |= extra;
		EXPECT(&t, 0, "capabilities");
		if (!(me->cap_inh & extra)) {
			t = base;
			t.cap_inh |= extra;
			EXPECT(&t, 0, "inheritable");
		}
	}
	t = base;
	t.cap_bnd = me->cap_bnd >> 1;
	EXPECT(&t, 0, "bounding set");
	t = base;
	t.securebits = me->securebits ^ SECBIT_NOROOT;
	EXPECT(&t, 0, "securebits");
	t = base;
	t.securebits = me->securebits | SECBIT_KEEP_CAPS;	/* exec clears it: no difference */
	EXPECT(&t, 0, NULL);
	if (me->no_new_privs) {
		t = base;
		t.no_new_privs = 0;
		EXPECT(&t, 0, "no_new_privs");
	}
	t = base;
	t.no_new_privs = 1;
	EXPECT(&t, 0, NULL);
	/* not dumpable: refused at checkpoint (setuid), fine at restore; 2 never */
	t = base;
	t.dumpable = 0;
	EXPECT(&t, 1, "dumpable");
	EXPECT(&t, 0, NULL);
	t.dumpable = 2;
	EXPECT(&t, 0, "dumpable");
	printf("PASS\n");
	return 0;
}
