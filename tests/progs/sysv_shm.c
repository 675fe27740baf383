/*
 * sysv_shm: two System V shared memory segments. A (a key of its own, mode
 * 0640, 3 pages and 100 bytes) is attached twice by main, and so by the
 * child it forks; B (IPC_PRIVATE) is attached once and removed at once
 * (IPC_RMID), so it lives only through its attachments. A restore must give
 * back both shmids, A's key, size and mode, B's removed state, the content,
 * and one segment behind every attachment. After a kill A outlives the job
 * (nobody attached): the restore takes it over.
 * After SIGTERM: all of that, and a write by the child seen by main in both
 * of A's attachments. A is removed at the end.
 */
#include "testlib.h"

#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define A_SIZE (3 * 4096 + 100)
#define B_SIZE 4096

static unsigned char pattern(int i) { return (unsigned char)(i * 13 + 1); }

int main(void)
{
	key_t key = 0x63720000 | (getpid() & 0xffff);
	int a = SYS(shmget(key, A_SIZE, IPC_CREAT | IPC_EXCL | 0640));
	int b = SYS(shmget(IPC_PRIVATE, B_SIZE, IPC_CREAT | 0600));
	unsigned char *a1 = shmat(a, NULL, 0), *a2 = shmat(a, NULL, 0), *b1 = shmat(b, NULL, 0);
	int go[2], done[2];
	struct shmid_ds ds;
	pid_t child;

	if (a1 == (void *)-1 || a2 == (void *)-1 || b1 == (void *)-1)
		fail("setup: shmat: %s", strerror(errno));
	for (int i = 0; i < A_SIZE; i++)
		a1[i] = pattern(i);
	memset(b1, 0xb5, 2000);
	SYS(shmctl(b, IPC_RMID, NULL));
	SYS(pipe(go));
	SYS(pipe(done));
	child = SYS(fork());
	if (child == 0) {
		char c;

		if (read(go[0], &c, 1) != 1)
			_exit(1);
		a1[A_SIZE - 1] = 0xee;
		b1[3] = 0x77;
		_exit(write(done[1], "d", 1) == 1 ? 0 : 1);
	}
	note("segments %d (key %#x) and %d (removed)", a, (unsigned)key, b);
	ready();
	wait_for_sigterm();

	CHECK(shmget(key, 0, 0) == a, "key %#x now names segment %d, want %d", (unsigned)key,
	      shmget(key, 0, 0), a);
	for (int i = 0; i < A_SIZE - 1; i++)
		if (a1[i] != pattern(i) || a2[i] != pattern(i))
			fail("segment %d byte %d: %#x / %#x, want %#x", a, i, a1[i], a2[i],
			     pattern(i));
	CHECK(b1[0] == 0xb5 && b1[1999] == 0xb5 && b1[2000] == 0, "segment %d content", b);
	SYS(shmctl(a, IPC_STAT, &ds));
	CHECK(ds.shm_segsz == A_SIZE, "segment %d size %zu, want %d", a, (size_t)ds.shm_segsz,
	      A_SIZE);
	CHECK((ds.shm_perm.mode & 0777) == 0640, "segment %d mode %o", a, ds.shm_perm.mode);
	CHECK(ds.shm_nattch == 4, "segment %d attached %lu times, want 4 (2 in each)", a,
	      (unsigned long)ds.shm_nattch);
	SYS(shmctl(b, IPC_STAT, &ds));
	CHECK(ds.shm_perm.mode & SHM_DEST, "segment %d is no longer marked removed", b);
	CHECK(ds.shm_nattch == 2, "segment %d attached %lu times, want 2", b,
	      (unsigned long)ds.shm_nattch);

	char c;
	int st;
	CHECK(write(go[1], "g", 1) == 1, "cannot wake the child");
	CHECK(read(done[0], &c, 1) == 1, "the child did not answer");
	CHECK(a1[A_SIZE - 1] == 0xee && a2[A_SIZE - 1] == 0xee,
	      "the child's write to segment %d is not seen", a);
	CHECK(b1[3] == 0x77, "the child's write to segment %d is not seen", b);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child status %#x", st);
	shmctl(a, IPC_RMID, NULL);
	pass();
}
