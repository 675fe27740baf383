/*
 * posix_shm: POSIX shared memory. "/cryo-a-PID" is mapped MAP_SHARED and
 * kept; "/cryo-b-PID" is mapped MAP_SHARED and unlinked at once (the usual
 * way to get memory only a process and its children share); a child shares
 * both. A restore must give back one object behind all the mappings of
 * each: the unlinked one with its content, still "(deleted)".
 * After SIGTERM: contents, and writes by the child seen by main in both.
 */
#include "testlib.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define SIZE (2 * 4096 + 512)

int main(void)
{
	char name_a[64], name_b[64];
	int go[2], done[2];
	unsigned char *a, *b;
	pid_t child;
	int fa, fb;

	snprintf(name_a, sizeof(name_a), "/cryo-a-%d", getpid());
	snprintf(name_b, sizeof(name_b), "/cryo-b-%d", getpid());
	fa = SYS(shm_open(name_a, O_RDWR | O_CREAT | O_EXCL, 0600));
	fb = SYS(shm_open(name_b, O_RDWR | O_CREAT | O_EXCL, 0640));
	SYS(ftruncate(fa, SIZE));
	SYS(ftruncate(fb, SIZE));
	a = (unsigned char *)SYS((long)mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0));
	b = (unsigned char *)SYS((long)mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fb, 0));
	close(fa);
	close(fb);
	SYS(shm_unlink(name_b));
	for (int i = 0; i < SIZE; i++) {
		a[i] = (unsigned char)(i * 3);
		b[i] = (unsigned char)(i * 5 + 1);
	}
	SYS(pipe(go));
	SYS(pipe(done));
	child = SYS(fork());
	if (child == 0) {
		char c;

		if (read(go[0], &c, 1) != 1)
			_exit(1);
		a[10] = 0xaa;
		b[SIZE - 1] = 0xbb;
		_exit(write(done[1], "d", 1) == 1 ? 0 : 1);
	}
	ready();
	wait_for_sigterm();

	for (int i = 0; i < SIZE; i++)
		if (a[i] != (unsigned char)(i * 3) || b[i] != (unsigned char)(i * 5 + 1))
			fail("byte %d: %#x / %#x", i, a[i], b[i]);
	char c;
	int st;
	CHECK(write(go[1], "g", 1) == 1, "cannot wake the child");
	CHECK(read(done[0], &c, 1) == 1, "the child did not answer");
	CHECK(a[10] == 0xaa, "the child's write to %s is not seen", name_a);
	CHECK(b[SIZE - 1] == 0xbb, "the child's write to the unlinked %s is not seen", name_b);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child status %#x", st);
	shm_unlink(name_a);
	pass();
}
