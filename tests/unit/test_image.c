/*
 * Unit test of the image layer (src/image/): CRC-32C against a bitwise
 * reference (hardware and table paths), the string table, a write/read
 * round trip of every kind of section, page alignment, file mode, temporary
 * files, write errors, and the reader's defences: every single-bit flip and
 * every truncation of a small image must be refused with CRYO_EIMAGE, and
 * images whose checksums were recomputed after hostile edits must never
 * crash the reader or cryo_inspect.
 *
 * Prints PASS and exits 0, or prints "FAIL: why" and exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cryo.h"
#include "image/image.h"
#include "util/util.h"

#define PAGE 4096
#define SECTION_HEADER_BYTES ((uint64_t)sizeof(struct cryo_section_header))

static char tmpdir[] = "/tmp/cryo-test-image.XXXXXX";
static char last_log[1024];
static int nr_logs;
static int verbose;

#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		if (!(cond))                                                          \
			fail(__LINE__, #cond, __VA_ARGS__);                           \
	} while (0)

static void cleanup_dir(void);

__attribute__((noreturn, format(printf, 3, 4)))
static void fail(int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: line %d (%s): ", line, cond);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" [last log: %s]\n", last_log);
	cleanup_dir();
	exit(1);
}

static void capture_log(const char *line, void *opaque)
{
	(void)opaque;
	snprintf(last_log, sizeof(last_log), "%s", line);
	nr_logs++;
	if (verbose)
		fprintf(stderr, "%s\n", line);
}

static void cleanup_dir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char p[4200];

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

/* Number of entries in tmpdir (besides . and ..), and whether any starts with '.'. */
static int dir_entries(int *hidden)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	int n = 0;

	*hidden = 0;
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (de->d_name[0] == '.')
			*hidden = 1;
	}
	closedir(d);
	return n;
}

static void tmp_path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", tmpdir, name);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(!fstat(fd, &st), "fstat");
	p = malloc(st.st_size + 1);
	CHECK(p, "malloc");
	CHECK(!pread_full(fd, p, st.st_size, 0), "read %s", path);
	close(fd);
	*len = st.st_size;
	return p;
}

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
	CHECK(!write_full(fd, p, len), "write %s", path);
	close(fd);
}

/* Same-size rewrite in place: much cheaper than truncating and rewriting. */
static void overwrite_file(int fd, const void *p, size_t len)
{
	ssize_t n = pwrite(fd, p, len, 0);

	CHECK(n == (ssize_t)len, "pwrite: %s", strerror(errno));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(void *p, size_t n)
{
	unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		c[i] = rnd();
}

/* ---------------------------------------------------------------- crc32c */

static uint32_t crc_ref(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void test_crc32c(void)
{
	static const unsigned char inc[32] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
					       15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
					       27, 28, 29, 30, 31 };
	unsigned char zero32[32] = { 0 }, ff32[32];
	size_t big = 200000;
	unsigned char *buf = malloc(big + 16);

	memset(ff32, 0xff, sizeof(ff32));
	/* RFC 3720 B.4 test vectors */
	CHECK(crc32c(0, "123456789", 9) == 0xe3069283, "check value");
	CHECK(crc32c(0, zero32, 32) == 0x8a9136aa, "32 zeros");
	CHECK(crc32c(0, ff32, 32) == 0x62a8ab43, "32 0xff");
	CHECK(crc32c(0, inc, 32) == 0x46dd794e, "incrementing");
	CHECK(crc32c(0, NULL, 0) == 0, "empty");

	fill_random(buf, big + 16);
	for (size_t len = 0; len < big; len += len < 300 ? 1 : 4099 + len / 3) {
		for (int align = 0; align < 8; align += 3) {
			uint32_t want = crc_ref(0x1234, buf + align, len);
			size_t cut = len / 3;

			CHECK(crc32c(0x1234, buf + align, len) == want, "len %zu align %d", len,
			      align);
			CHECK(crc32c(crc32c(0x1234, buf + align, cut), buf + align + cut,
				     len - cut) == want, "continuation len %zu", len);
		}
	}
	free(buf);
}

/* The table fallback, in a fresh process so the dispatch is decided anew. */
static void test_crc32c_software(void)
{
	pid_t pid = fork();
	int status;

	CHECK(pid >= 0, "fork");
	if (!pid) {
		setenv("CRYO_CRC32C_SOFTWARE", "1", 1);
		execl("/proc/self/exe", "test_image", "--crc-only", (char *)NULL);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "software crc32c (status %d)",
	      status);
}

/* ---------------------------------------------------------------- strtab */

static void test_strtab(void)
{
	struct strtab t = { 0 };
	cryo_str_t a, b, c, e;
	char s[32];
	cryo_str_t offs[5000];

	e = strtab_add(&t, "");
	a = strtab_add(&t, "/usr/bin/sleep");
	b = strtab_add(&t, "[heap]");
	c = strtab_add(&t, "/usr/bin/sleep");
	CHECK(e == 0 && t.len >= 1 && t.data[0] == 0, "offset 0 is the empty string");
	CHECK(a != 0 && a == c && a != b, "dedup %u %u %u", a, b, c);
	CHECK(!strcmp(t.data + a, "/usr/bin/sleep") && !strcmp(t.data + b, "[heap]"), "content");
	CHECK(strtab_add(&t, NULL) == 0, "NULL is the empty string");
	for (int i = 0; i < 5000; i++) {
		snprintf(s, sizeof(s), "/lib/x%d.so", i);
		offs[i] = strtab_add(&t, s);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(s, sizeof(s), "/lib/x%d.so", i);
		CHECK(!strcmp(t.data + offs[i], s), "string %d", i);
		CHECK(strtab_add(&t, s) == offs[i], "dedup %d", i);
	}
	strtab_free(&t);
	CHECK(!t.data && !t.len, "free");
}

/* -------------------------------------------------------- write and read */

struct expect {
	uint32_t type;
	uint64_t id;
	uint32_t entry_size, entry_count;
	const void *payload;
	uint64_t len;
	int aligned;
};

#define MAX_EXPECT 512

struct plan {
	struct expect e[MAX_EXPECT];
	int n;
};

static void add(struct img_writer *w, struct plan *p, uint32_t type, uint64_t id,
		uint32_t esz, uint32_t cnt, const void *payload, uint64_t len, int aligned)
{
	int ret;

	CHECK(p->n < MAX_EXPECT, "plan full");
	if (aligned)
		ret = imgw_section_aligned(w, type, id, esz, cnt, payload, len);
	else
		ret = imgw_section(w, type, id, esz, cnt, payload, len);
	CHECK(ret == 0, "write section type %u len %llu: %d", type, (unsigned long long)len, ret);
	p->e[p->n++] = (struct expect){ type, id, esz, cnt, payload, len, aligned };
}

static void verify_plan(struct img_reader *r, const struct plan *p)
{
	size_t i = 0;

	for (int k = 0; k < p->n; k++, i++) {
		const struct expect *x = &p->e[k];
		const struct cryo_img_index_entry *e;

		/* PAD sections appear in the index only in front of aligned ones */
		while ((e = imgr_section(r, i)) && e->type == CRYO_SEC_PAD) {
			CHECK(p->e[k].aligned && p->e[k].len >= CRYO_IMG_PAGES_ALIGN_MIN,
			      "PAD before unaligned section %d", k);
			i++;
		}
		CHECK(e, "section %d missing", k);
		CHECK(e->type == x->type && e->id == x->id && e->length == x->len &&
		      e->entry_count == x->entry_count, "section %d header", k);
		if (x->aligned && x->len >= CRYO_IMG_PAGES_ALIGN_MIN)
			CHECK(imgr_payload_offset(r, i) % PAGE == 0, "section %d not aligned", k);
		if (x->type == CRYO_SEC_PAGES) {
			unsigned char *buf = malloc(x->len);

			CHECK(!pread_full(imgr_fd(r), buf, x->len, imgr_payload_offset(r, i)),
			      "pread pages");
			CHECK(!memcmp(buf, x->payload, x->len), "page data %d", k);
			free(buf);
		} else if (x->entry_size) {
			uint32_t n;
			void *t = imgr_load_table(r, i, x->entry_size, &n);

			CHECK(t && n == x->entry_count, "load table %d", k);
			CHECK(!memcmp(t, x->payload, x->len), "table content %d", k);
			free(t);
		} else {
			uint64_t len;
			unsigned char *b = imgr_load_blob(r, i, &len);

			CHECK(b && len == x->len && b[len] == 0, "load blob %d", k);
			CHECK(!len || !memcmp(b, x->payload, len), "blob content %d", k);
			free(b);
		}
	}
	CHECK(imgr_nr_sections(r) == i, "extra sections: %zu vs %zu", imgr_nr_sections(r), i);
}

static void test_roundtrip(void)
{
	char path[4200];
	struct img_writer *w;
	struct img_reader *r;
	struct plan *p = calloc(1, sizeof(*p));
	struct strtab st = { 0 };
	struct cryo_img_fd fds[3];
	struct cryo_img_vma vmas[2];
	struct cryo_img_page_run runs[2] = { { 0x400000, 5 }, { 0x800000, 1 } };
	unsigned char *pages = malloc(6 * PAGE), *big = malloc(300000), *small = malloc(9000);
	/* page data of CRYO_IMG_PAGES_ALIGN_MIN and more is page aligned, less is not */
	const uint32_t nr_large = CRYO_IMG_PAGES_ALIGN_MIN / PAGE;
	cryo_str_t s_exe, s_heap;
	uint64_t before_commit;
	struct stat sb;
	int hidden;
	mode_t old_umask = umask(0277);	/* the image must be 0600 anyway */

	tmp_path(path, sizeof(path), "job.cryo");
	fill_random(pages, 6 * PAGE);
	fill_random(big, 300000);
	fill_random(small, 9000);
	memset(fds, 0, sizeof(fds));
	memset(vmas, 0, sizeof(vmas));
	s_exe = strtab_add(&st, "/usr/bin/sleep");
	s_heap = strtab_add(&st, "[heap]");
	for (int i = 0; i < 3; i++) {
		fds[i].pid = 1234;
		fds[i].fd = i;
		fds[i].kind = CRYO_FD_REG;
		fds[i].flags = 0100002;
		fds[i].path = s_exe;
	}
	vmas[0] = (struct cryo_img_vma){ .start = 0x400000, .end = 0x405000, .prot = 5,
					 .kind = CRYO_VMA_FILE_PRIVATE, .name = s_exe,
					 .nr_pages_dumped = 5 };
	vmas[1] = (struct cryo_img_vma){ .start = 0x800000, .end = 0x801000, .prot = 3,
					 .kind = CRYO_VMA_ANON_PRIVATE, .name = s_heap,
					 .nr_pages_dumped = 1, .flags = CRYO_VMA_HEAP };

	CHECK(imgw_open(&w, path, 0x2e7, 0) == 0, "imgw_open");
	add(w, p, CRYO_SEC_STRINGS, 0, 0, 0, st.data, st.len, 0);
	add(w, p, CRYO_SEC_FD, 1234, sizeof(fds[0]), 3, fds, sizeof(fds), 0);
	add(w, p, CRYO_SEC_VMA, 1234, sizeof(vmas[0]), 2, vmas, sizeof(vmas), 0);
	add(w, p, CRYO_SEC_BLOB, 1, 0, 0, big, 300000, 0);	/* direct write path */
	add(w, p, CRYO_SEC_BLOB, 2, 0, 0, small, 7, 0);		/* needs 1 pad byte */
	add(w, p, CRYO_SEC_BLOB, 3, 0, 0, NULL, 0, 0);
	add(w, p, CRYO_SEC_XSTATE, 1234, 0, 0, small, 2688, 0);
	add(w, p, CRYO_SEC_PAGEMAP, 0, sizeof(runs[0]), 1, runs, sizeof(runs[0]), 0);
	add(w, p, CRYO_SEC_PAGES, 0, PAGE, 5, pages, 5 * PAGE, 1);
	/* right after page data: the payload would start 48 bytes into a page */
	add(w, p, CRYO_SEC_PAGEMAP, 1, sizeof(runs[1]), 1, runs + 1, sizeof(runs[1]), 0);
	add(w, p, CRYO_SEC_PAGES, 1, PAGE, 1, pages + 5 * PAGE, PAGE, 1);
	/* a blob that leaves exactly room for the next header: no PAD needed */
	add(w, p, CRYO_SEC_BLOB, 4, 0, 0, small, PAGE - 2 * SECTION_HEADER_BYTES, 0);
	add(w, p, CRYO_SEC_PAGES, 2, PAGE, nr_large, big, nr_large * PAGE, 1);
	/* every residue of the offset modulo the page, in steps of 8 */
	for (uint64_t l = 0; l < PAGE + 64; l += 8 * 7) {
		add(w, p, CRYO_SEC_BLOB, 100 + l, 0, 0, small, l, 0);
		add(w, p, CRYO_SEC_PAGES, 3, PAGE, nr_large, big + l, nr_large * PAGE, 1);
		add(w, p, CRYO_SEC_PAGES, 4, PAGE, 1, pages + PAGE, PAGE, 1);	/* unaligned */
	}
	before_commit = imgw_bytes_written(w);
	CHECK(dir_entries(&hidden) == 1 && hidden, "temporary file while writing");
	CHECK(imgw_commit(w, 0) == 0, "commit");
	CHECK(dir_entries(&hidden) == 1 && !hidden, "temporary file left after commit");
	CHECK(!stat(path, &sb), "stat");
	CHECK((sb.st_mode & 07777) == 0600, "mode %o", sb.st_mode & 07777);
	CHECK((uint64_t)sb.st_size > before_commit, "size");

	CHECK(imgr_open(&r, path) == 0, "imgr_open");
	CHECK(imgr_header(r)->xfeatures == 0x2e7 && imgr_header(r)->version_major == 1 &&
	      imgr_header(r)->arch == 62 && imgr_header(r)->created_ns, "header");
	verify_plan(r, p);
	CHECK(!strcmp(imgr_str(r, s_exe), "/usr/bin/sleep"), "str");
	CHECK(!strcmp(imgr_str(r, 0), ""), "str 0");
	CHECK(imgr_str(r, st.len) == NULL && imgr_str(r, 0xffffffff) == NULL, "str out of range");
	CHECK(imgr_find(r, CRYO_SEC_PAGES, 1, 0, 0) >= 0, "find pages 1");
	CHECK(imgr_find(r, CRYO_SEC_PAGES, 77, 0, 0) == -1, "find missing");
	CHECK(imgr_find(r, CRYO_SEC_TASK, 0, 1, 0) == -1, "find missing type");
	CHECK(imgr_section(r, imgr_nr_sections(r)) == NULL, "section out of range");

	/* entries cut and zero-extended */
	{
		long i = imgr_find(r, CRYO_SEC_FD, 0, 1, 0);
		uint32_t n;
		unsigned char *t = imgr_load_table(r, i, 8, &n);

		CHECK(t && n == 3 && !memcmp(t + 8, &fds[1], 8), "cut entries");
		free(t);
		t = imgr_load_table(r, i, sizeof(fds[0]) + 100, &n);
		CHECK(t && n == 3 && !memcmp(t + sizeof(fds[0]) + 100, &fds[1], sizeof(fds[0])),
		      "extended entries");
		for (int k = 0; k < 100; k++)
			CHECK(t[sizeof(fds[0]) + k] == 0, "zero extension");
		free(t);
		CHECK(!imgr_load_table(r, imgr_find(r, CRYO_SEC_BLOB, 0, 1, 0), 8, &n),
		      "a blob is not a table");
		CHECK(!imgr_load_table(r, 9999, 8, &n), "no such section");
	}

	/* inspect, text and JSON (valid JSON if python3 is there to tell) */
	{
		char out[4300], cmd[9000];
		FILE *f;

		tmp_path(out, sizeof(out), "inspect.txt");
		f = fopen(out, "w");
		CHECK(cryo_inspect(path, f, 0) == 0, "inspect text");
		fclose(f);
		tmp_path(out, sizeof(out), "inspect.json");
		f = fopen(out, "w");
		CHECK(cryo_inspect(path, f, 1) == 0, "inspect json");
		fclose(f);
		if (!system("command -v python3 >/dev/null 2>&1")) {
			snprintf(cmd, sizeof(cmd), "python3 -m json.tool %s >/dev/null", out);
			CHECK(system(cmd) == 0, "inspect --json output is not valid JSON");
		}
		unlink(out);
		tmp_path(out, sizeof(out), "inspect.txt");
		unlink(out);
	}
	imgr_close(r);
	unlink(path);
	strtab_free(&st);
	umask(old_umask);
	free(pages);
	free(big);
	free(small);
	free(p);
}

/* Larger entries from a "newer minor", and unknown section types. */
static void test_versions(void)
{
	char path[4200];
	struct img_writer *w;
	struct img_reader *r;
	unsigned char entries[3][200], *img;
	struct cryo_file_header *h;
	size_t len;
	uint32_t n;
	int ret;

	tmp_path(path, sizeof(path), "v.cryo");
	fill_random(entries, sizeof(entries));
	CHECK(imgw_open(&w, path, 0, 0) == 0, "open");
	CHECK(imgw_section(w, CRYO_SEC_VMA, 1, 200, 3, entries, sizeof(entries)) == 0, "vma");
	CHECK(imgw_section(w, 99, 5, 0, 0, "future", 6) == 0, "unknown type");
	CHECK(imgw_commit(w, 1) == 0, "commit");

	/* unknown type in a 1.0 image: refused */
	ret = imgr_open(&r, path);
	CHECK(ret == CRYO_EIMAGE && strstr(last_log, "unknown section type"), "unknown type");

	/* the same as an image of a newer minor: accepted, the section skipped by callers */
	img = read_file(path, &len);
	h = (struct cryo_file_header *)img;
	h->version_minor = CRYO_IMG_MINOR + 1;
	h->crc = crc32c(0, h, offsetof(struct cryo_file_header, crc));
	write_file(path, img, len);
	CHECK(imgr_open(&r, path) == 0, "newer minor refused");
	{
		struct cryo_img_vma *v = imgr_load_table(r, 0, sizeof(*v), &n);

		CHECK(v && n == 3, "load longer entries");
		for (int i = 0; i < 3; i++)
			CHECK(!memcmp(&v[i], entries[i], sizeof(*v)), "entry %d cut", i);
		free(v);
	}
	CHECK(imgr_find(r, 99, 5, 0, 0) == 1, "unknown section listed");
	imgr_close(r);

	/* newer major: refused, before the checksum (v2 may move it) */
	h->version_major = 2;
	h->version_minor = 0;
	write_file(path, img, len);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE &&
	      strstr(last_log, "unsupported version 2.0 (this cryo reads 1.x)"),
	      "major 2 (stale crc)");
	h->crc = crc32c(0, h, offsetof(struct cryo_file_header, crc));
	write_file(path, img, len);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE && strstr(last_log, "unsupported version 2.0"),
	      "major 2");

	/* another architecture, with a valid checksum */
	h->version_major = 1;
	h->arch = 183;
	h->crc = crc32c(0, h, offsetof(struct cryo_file_header, crc));
	write_file(path, img, len);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE &&
	      strstr(last_log, "built for architecture 183, this machine is x86_64 (62)"),
	      "arch");
	CHECK(strstr(last_log, path), "message names the image");

	/* nonzero flags, other page size */
	h->arch = 62;
	h->page_size = 65536;
	h->crc = crc32c(0, h, offsetof(struct cryo_file_header, crc));
	write_file(path, img, len);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE && strstr(last_log, "page size"), "page size");
	free(img);
	unlink(path);
}

static void test_open_errors(void)
{
	char path[4200];
	struct img_reader *r = (void *)1;
	struct img_writer *w;

	tmp_path(path, sizeof(path), "missing.cryo");
	CHECK(imgr_open(&r, path) == CRYO_ENOIMAGE && !r, "missing file");
	CHECK(strstr(last_log, path) && strstr(last_log, strerror(ENOENT)), "missing message");
	CHECK(imgr_open(&r, tmpdir) == CRYO_ENOIMAGE, "directory");
	write_file(path, "", 0);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE, "empty file");
	write_file(path, "hello world, this is not an image", 33);
	CHECK(imgr_open(&r, path) == CRYO_EIMAGE && strstr(last_log, "not a cryo image"),
	      "not an image");
	unlink(path);
	if (geteuid() != 0) {
		write_file(path, "x", 1);
		chmod(path, 0);
		CHECK(imgr_open(&r, path) == CRYO_ENOIMAGE && strstr(last_log, strerror(EACCES)),
		      "EACCES");
		unlink(path);
	}
	CHECK(imgw_open(&w, "/nonexistent-dir/x.cryo", 0, 0) == CRYO_EWRITE && !w, "bad dir");
	CHECK(strstr(last_log, "/nonexistent-dir/.x.cryo.tmp."), "names the temp path");
	CHECK(imgw_open(&w, "/tmp/", 0, 0) == CRYO_EWRITE, "directory as image name");
}

static void test_abort(void)
{
	char path[4200];
	struct img_writer *w;
	unsigned char page[PAGE] = { 1 };
	int hidden;

	tmp_path(path, sizeof(path), "aborted.cryo");
	CHECK(imgw_open(&w, path, 0, 0) == 0, "open");
	CHECK(imgw_section_aligned(w, CRYO_SEC_PAGES, 0, PAGE, 1, page, PAGE) == 0, "pages");
	CHECK(dir_entries(&hidden) == 1 && hidden, "temp file exists");
	imgw_abort(w);
	CHECK(dir_entries(&hidden) == 0, "abort left a file");
	imgw_abort(NULL);

	/* misuse is refused before anything is written */
	CHECK(imgw_open(&w, path, 0, 0) == 0, "open");
	CHECK(imgw_section(w, CRYO_SEC_PAGES, 0, PAGE, 1, page, PAGE) == CRYO_EINTERNAL,
	      "unaligned pages");
	CHECK(imgw_section(w, CRYO_SEC_FD, 0, 80, 2, page, 100) == CRYO_EINTERNAL, "bad shape");
	CHECK(imgw_section(w, CRYO_SEC_BLOB, 0, 1, 1, page, 1) == CRYO_EINTERNAL, "blob shape");
	CHECK(imgw_section(w, CRYO_SEC_PAD, 0, 0, 0, page, 8) == CRYO_EINTERNAL, "PAD");
	CHECK(imgw_section(w, CRYO_SEC_BLOB, 0, 0, 0, NULL, 8) == CRYO_EINTERNAL, "NULL");
	imgw_abort(w);
	CHECK(dir_entries(&hidden) == 0, "abort left a file");
}

/* ENOSPC stand-in: RLIMIT_FSIZE makes write() fail with EFBIG at a chosen size. */
static void test_write_errors(void)
{
	char path[4200];
	struct img_writer *w;
	struct rlimit old, lim;
	size_t big_len = 1 << 20;
	unsigned char *big = calloc(1, big_len);
	int hidden, ret;

	tmp_path(path, sizeof(path), "full.cryo");
	signal(SIGXFSZ, SIG_IGN);
	CHECK(!getrlimit(RLIMIT_FSIZE, &old), "getrlimit");

	/* a large direct write fails */
	lim = old;
	lim.rlim_cur = 256 << 10;
	CHECK(!setrlimit(RLIMIT_FSIZE, &lim), "setrlimit");
	CHECK(imgw_open(&w, path, 0, 0) == 0, "open");
	ret = imgw_section(w, CRYO_SEC_BLOB, 1, 0, 0, big, big_len);
	CHECK(ret == CRYO_EWRITE, "big write past the limit: %d", ret);
	CHECK(strstr(last_log, ".full.cryo.tmp.") && strstr(last_log, strerror(EFBIG)),
	      "message names path and errno");
	CHECK(imgw_section(w, CRYO_SEC_BLOB, 2, 0, 0, big, 8) == CRYO_EWRITE, "sticky error");
	CHECK(imgw_commit(w, 1) == CRYO_EWRITE, "commit after error");
	CHECK(dir_entries(&hidden) == 0, "failed commit left a file");

	/* small buffered writes: the error shows at the latest in commit */
	for (rlim_t limit = 4096; limit < 40000; limit += 4000) {
		lim.rlim_cur = limit;
		CHECK(!setrlimit(RLIMIT_FSIZE, &lim), "setrlimit");
		ret = imgw_open(&w, path, 0, 0);
		CHECK(ret == 0, "open");
		for (int i = 0; i < 30 && !ret; i++)
			ret = imgw_section(w, CRYO_SEC_BLOB, i, 0, 0, big, 1000);
		if (ret) {
			CHECK(ret == CRYO_EWRITE, "section: %d", ret);
			imgw_abort(w);
		} else {
			CHECK(imgw_commit(w, 0) == CRYO_EWRITE, "commit past limit %lu",
			      (unsigned long)limit);
		}
		CHECK(dir_entries(&hidden) == 0, "a failed write left a file");
	}
	CHECK(!setrlimit(RLIMIT_FSIZE, &old), "restore rlimit");
	signal(SIGXFSZ, SIG_DFL);
	free(big);
}

/* ----------------------------------------------------------- corruption */

static void make_small_image(const char *path)
{
	struct img_writer *w;
	struct cryo_img_fd fds[2];
	unsigned char page[PAGE];
	const char strings[] = "\0/dev/null\0/tmp/x";

	memset(fds, 0, sizeof(fds));
	fds[0].fd = 1;
	fds[0].path = 1;
	fds[1].fd = 2;
	fds[1].path = 11;
	fill_random(page, sizeof(page));
	CHECK(imgw_open(&w, path, 7, 0) == 0, "open");
	CHECK(!imgw_section(w, CRYO_SEC_STRINGS, 0, 0, 0, strings, sizeof(strings)), "strings");
	CHECK(!imgw_section(w, CRYO_SEC_FD, 1, sizeof(fds[0]), 2, fds, sizeof(fds)), "fds");
	CHECK(!imgw_section(w, CRYO_SEC_BLOB, 1, 0, 0, "abc", 3), "blob");
	CHECK(!imgw_section_aligned(w, CRYO_SEC_PAGES, 0, PAGE, 1, page, PAGE), "pages");
	CHECK(imgw_commit(w, 1) == 0, "commit");
}

/* Open, and if that works use everything, as restore and inspect would. */
static int open_and_use(const char *path, FILE *devnull)
{
	struct img_reader *r;
	int ret = imgr_open(&r, path);

	if (ret)
		return ret;
	for (size_t i = 0; i < imgr_nr_sections(r); i++) {
		uint64_t len;
		uint32_t n;
		void *p = imgr_load_blob(r, i, &len);

		free(p);
		p = imgr_load_table(r, i, 64, &n);
		free(p);
	}
	imgr_close(r);
	return cryo_inspect(path, devnull, 0) | cryo_inspect(path, devnull, 1);
}

static void test_bit_flips_and_truncation(void)
{
	char path[4200], bad[4200];
	unsigned char *img, *copy;
	size_t len;
	struct img_reader *r;
	int ret, fd;

	tmp_path(path, sizeof(path), "small.cryo");
	tmp_path(bad, sizeof(bad), "bad.cryo");
	make_small_image(path);
	img = read_file(path, &len);
	copy = malloc(len);
	CHECK(imgr_open(&r, path) == 0, "small image");
	imgr_close(r);

	write_file(bad, img, len);
	fd = open(bad, O_WRONLY);
	CHECK(fd >= 0, "open");
	for (size_t off = 0; off < len; off++) {
		unsigned char b = img[off] ^ (1 << (off % 8));

		CHECK(pwrite(fd, &b, 1, off) == 1, "pwrite");
		ret = imgr_open(&r, bad);
		CHECK(ret == CRYO_EIMAGE, "bit %zu of byte %zu flipped: %d", off % 8, off, ret);
		CHECK(pwrite(fd, img + off, 1, off) == 1, "pwrite");
	}
	/* from the longest down, so the bytes before the cut stay intact */
	for (size_t cut = len; cut-- > 0;) {
		CHECK(!ftruncate(fd, cut), "ftruncate");
		ret = imgr_open(&r, bad);
		CHECK(ret == CRYO_EIMAGE || ret == CRYO_ENOIMAGE, "truncated to %zu: %d", cut, ret);
	}
	close(fd);
	/* trailing garbage */
	memcpy(copy, img, len);
	write_file(bad, copy, len);
	{
		int fd = open(bad, O_WRONLY | O_APPEND);

		CHECK(fd >= 0 && write(fd, "x", 1) == 1, "append");
		close(fd);
	}
	CHECK(imgr_open(&r, bad) == CRYO_EIMAGE, "trailing data");
	CHECK(strstr(last_log, "footer missing"), "trailing data message");

	/* the message for a damaged payload names section, type and offset */
	memcpy(copy, img, len);
	copy[len - 200 - 4096] ^= 0x10;	/* inside the page data */
	write_file(bad, copy, len);
	CHECK(imgr_open(&r, bad) == CRYO_EIMAGE && strstr(last_log, "(PAGES) at offset") &&
	      strstr(last_log, "checksum mismatch"), "payload message");
	write_file(bad, img, len - 1);
	CHECK(imgr_open(&r, bad) == CRYO_EIMAGE && strstr(last_log, "truncated: footer missing") &&
	      strstr(last_log, "bytes)"), "truncation message");
	free(copy);
	free(img);
	unlink(bad);
	unlink(path);
}

/*
 * Recompute every checksum the way a malicious writer would, following
 * whatever the (edited) index says, with bounds checks of our own.
 */
static void reseal(unsigned char *img, size_t len)
{
	struct cryo_file_header *h = (void *)img;
	struct cryo_footer f;
	struct cryo_section_header sh;
	uint64_t io;

	if (len < PAGE + sizeof(f))
		return;
	h->crc = crc32c(0, h, offsetof(struct cryo_file_header, crc));
	memcpy(&f, img + len - sizeof(f), sizeof(f));
	io = f.index_offset;
	if (io < len && len - io >= sizeof(sh) + sizeof(f)) {
		memcpy(&sh, img + io, sizeof(sh));
		uint64_t plen = sh.length;
		uint64_t room = len - io - sizeof(sh) - sizeof(f);

		if (plen > room)
			plen = room;
		if (sh.entry_size >= sizeof(struct cryo_img_index_entry)) {
			for (uint64_t k = 0; k < sh.entry_count &&
			     (k + 1) * sh.entry_size <= plen; k++) {
				struct cryo_img_index_entry e;
				struct cryo_section_header s2;

				memcpy(&e, img + io + sizeof(sh) + k * sh.entry_size, sizeof(e));
				if (e.offset >= len || len - e.offset < sizeof(s2))
					continue;
				memcpy(&s2, img + e.offset, sizeof(s2));
				uint64_t l2 = s2.length, r2 = len - e.offset - sizeof(s2);

				s2.payload_crc = crc32c(0, img + e.offset + sizeof(s2),
							l2 < r2 ? l2 : r2);
				s2.header_crc = crc32c(0, &s2,
					offsetof(struct cryo_section_header, header_crc));
				memcpy(img + e.offset, &s2, sizeof(s2));
			}
		}
		sh.payload_crc = crc32c(0, img + io + sizeof(sh), plen);
		sh.header_crc = crc32c(0, &sh, offsetof(struct cryo_section_header, header_crc));
		memcpy(img + io, &sh, sizeof(sh));
	}
	f.crc = crc32c(0, &f, offsetof(struct cryo_footer, crc));
	memcpy(img + len - sizeof(f), &f, sizeof(f));
}

/*
 * Hostile but checksummed: overwrite each structural byte (headers, index,
 * footer, string and table payloads) with interesting values, reseal, and
 * make sure nothing crashes, whatever the verdict.
 */
static void test_resealed_mutations(void)
{
	static const unsigned char values[] = { 0x00, 0xff, 0x01, 0x80, 0x7f, 0x10 };
	char path[4200], bad[4200];
	unsigned char *img, *copy;
	size_t len;
	FILE *devnull = fopen("/dev/null", "w");
	int accepted = 0, refused = 0, fd;
	uint64_t pad_start, pages_end;
	struct img_reader *r;

	tmp_path(path, sizeof(path), "small.cryo");
	tmp_path(bad, sizeof(bad), "bad.cryo");
	make_small_image(path);
	img = read_file(path, &len);
	copy = malloc(len);
	memcpy(copy, img, len);
	reseal(copy, len);
	CHECK(!memcmp(copy, img, len), "reseal of an intact image changes it");
	/* PAD and page payloads: only their checksum looks at them */
	CHECK(imgr_open(&r, path) == 0, "open");
	pages_end = imgr_payload_offset(r, imgr_find(r, CRYO_SEC_PAGES, 0, 1, 0)) + PAGE;
	/* one page of page data is not aligned: no PAD in front of it */
	CHECK(imgr_find(r, CRYO_SEC_PAD, 0, 1, 0) == -1, "PAD in front of a page");
	pad_start = pages_end - PAGE;
	imgr_close(r);
	write_file(bad, img, len);
	fd = open(bad, O_WRONLY);
	CHECK(fd >= 0, "open");
	for (size_t off = 0; off < len; off++) {
		if (off >= pad_start && off < pages_end &&
		    (off < pages_end - PAGE - SECTION_HEADER_BYTES || off >= pages_end - PAGE))
			continue;
		if (off >= sizeof(struct cryo_file_header) && off < PAGE)
			continue;	/* header padding: must be zero, nothing else */
		for (size_t v = 0; v < sizeof(values); v++) {
			if (img[off] == values[v])
				continue;
			memcpy(copy, img, len);
			copy[off] = values[v];
			reseal(copy, len);
			overwrite_file(fd, copy, len);
			if (open_and_use(bad, devnull) == 0)
				accepted++;
			else
				refused++;
		}
	}
	if (verbose)
		fprintf(stderr, "resealed mutations: %d accepted, %d refused\n", accepted, refused);
	CHECK(refused > 0 && accepted > 0, "mutations all %s", refused ? "refused" : "accepted");
	close(fd);
	fclose(devnull);
	free(copy);
	free(img);
	unlink(bad);
	unlink(path);
}

int main(int argc, char **argv)
{
	verbose = getenv("TEST_VERBOSE") != NULL;
	cryo_set_log(capture_log, NULL);
	if (argc > 1 && !strcmp(argv[1], "--crc-only")) {
		test_crc32c();
		return 0;
	}
	if (!mkdtemp(tmpdir)) {
		printf("FAIL: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_crc32c();
	test_crc32c_software();
	test_strtab();
	test_roundtrip();
	test_versions();
	test_open_errors();
	test_abort();
	test_write_errors();
	test_bit_flips_and_truncation();
	test_resealed_mutations();
	cleanup_dir();
	printf("PASS\n");
	return 0;
}
