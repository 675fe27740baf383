/*
 * memfd: two memory files. "cryo-a" (sealable) holds data, is mapped
 * MAP_SHARED by main and by a child (inherited), is open at an offset and
 * sealed against shrinking and growing; "cryo-b" is only open, with data
 * and an offset. A restore must bring back one object per memfd (writes
 * through the mapping seen through the fd and by the child), its name, size,
 * seals, content and the descriptor's flags and offset.
 * After SIGTERM: all of that, and a write by the child seen by main.
 */
#include "testlib.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PAGES 5
#define PG 4096

static unsigned char pattern(int i) { return (unsigned char)(i * 7 + 3); }

int main(void)
{
	int a = SYS(memfd_create("cryo-a", MFD_ALLOW_SEALING | MFD_CLOEXEC));
	int b = SYS(memfd_create("cryo-b", 0));
	int go[2], done[2];
	unsigned char *map, buf[64];
	char link[128], path[64];
	pid_t child;

	for (int i = 0; i < 3 * PG; i += 64) {
		for (int k = 0; k < 64; k++)
			buf[k] = pattern(i + k);
		SYS(write(a, buf, 64));
	}
	SYS(ftruncate(a, PAGES * PG));
	map = (unsigned char *)SYS((long)mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED,
					     a, 0));
	SYS(fcntl(a, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	SYS(lseek(a, 1234, SEEK_SET));
	SYS(write(b, "only open, never mapped", 23));
	SYS(lseek(b, 5, SEEK_SET));
	map[4 * PG] = 0x5a;	/* a page beyond the written data */

	SYS(pipe(go));
	SYS(pipe(done));
	child = SYS(fork());
	if (child == 0) {
		char c;

		if (read(go[0], &c, 1) != 1)
			_exit(1);
		map[2 * PG + 1] = 0xc7;	/* main must see it */
		_exit(write(done[1], "d", 1) == 1 ? 0 : 1);
	}
	ready();
	wait_for_sigterm();

	for (int i = 0; i < 3 * PG; i++)
		if (map[i] != pattern(i))
			fail("byte %d of the mapping: %#x, want %#x", i, map[i], pattern(i));
	CHECK(map[4 * PG] == 0x5a, "byte at page 4: %#x, want 0x5a", map[4 * PG]);
	CHECK(lseek(a, 0, SEEK_CUR) == 1234, "offset of cryo-a: %ld", (long)lseek(a, 0, SEEK_CUR));
	map[100] = 0x11;	/* through the mapping, seen through the fd */
	CHECK(pread(a, buf, 1, 100) == 1 && buf[0] == 0x11, "mapping and fd are not one object");
	struct stat st;
	SYS(fstat(a, &st));
	CHECK(st.st_size == PAGES * PG, "size of cryo-a: %ld", (long)st.st_size);
	CHECK(fcntl(a, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "seals of cryo-a: %#x",
	      fcntl(a, F_GET_SEALS));
	CHECK(fcntl(a, F_GETFD) == FD_CLOEXEC, "cryo-a lost close-on-exec");
	CHECK(ftruncate(a, PG) < 0 && errno == EPERM, "cryo-a could shrink: the seal is gone");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
	link[readlink(path, link, sizeof(link) - 1)] = 0;
	CHECK_EQ_STR("cryo-a's name", "/memfd:cryo-a (deleted)", link);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b);
	link[readlink(path, link, sizeof(link) - 1)] = 0;
	CHECK_EQ_STR("cryo-b's name", "/memfd:cryo-b (deleted)", link);
	CHECK(lseek(b, 0, SEEK_CUR) == 5, "offset of cryo-b: %ld", (long)lseek(b, 0, SEEK_CUR));
	CHECK(pread(b, buf, 23, 0) == 23 && !memcmp(buf, "only open, never mapped", 23),
	      "content of cryo-b");
	CHECK(fcntl(b, F_GET_SEALS) == F_SEAL_SEAL, "seals of cryo-b: %#x", fcntl(b, F_GET_SEALS));

	char c;
	int st2;
	CHECK(write(go[1], "g", 1) == 1, "cannot wake the child");
	CHECK(read(done[0], &c, 1) == 1, "the child did not answer");
	CHECK(map[2 * PG + 1] == 0xc7, "the child's write is not seen: %#x", map[2 * PG + 1]);
	CHECK(waitpid(child, &st2, 0) == child && WIFEXITED(st2) && WEXITSTATUS(st2) == 0,
	      "child status %#x", st2);
	pass();
}
