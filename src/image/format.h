/*
 * The on-disk layout of a cryo image, version 1. docs/image-format.md
 * describes every field; keep the two in step.
 *
 * An image is a file header, a sequence of sections and a footer:
 *
 *   [file header, padded to one page]
 *   [section header][payload] ...       (PAD sections keep page data aligned)
 *   [INDEX section]                     (where every other section starts)
 *   [footer]
 *
 * All integers are little-endian. Table sections hold entry_count entries of
 * entry_size bytes each; a newer minor version may make entries longer (a
 * reader uses the fields it knows and ignores the tail) and may add section
 * types (unknown types are skipped). Every section header and payload carries
 * a CRC-32C, so a flipped bit anywhere is caught before any task is created.
 */
#ifndef CRYO_IMAGE_FORMAT_H
#define CRYO_IMAGE_FORMAT_H

#include <stdint.h>

#define CRYO_IMG_MAGIC		"CRYOIMG1"
#define CRYO_IMG_FOOTER_MAGIC	"CRYOEND1"
#define CRYO_IMG_MAJOR		1
#define CRYO_IMG_MINOR		3
#define CRYO_IMG_ARCH_X86_64	62	/* ELF e_machine EM_X86_64 */
#define CRYO_IMG_PAGE_SIZE	4096
/*
 * PAGES payloads from this size on start on a page boundary (1.2; before,
 * all did): below it, a page of padding would cost more than an unaligned
 * read (10 000 areas of two pages: 84 MB of image for 41 MB of data).
 */
#define CRYO_IMG_PAGES_ALIGN_MIN	(64u << 10)
#define CRYO_SECTION_MAGIC	0x54434553u	/* "SECT" */

struct cryo_file_header {
	char magic[8];
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t header_size;		/* sizeof(struct cryo_file_header) */
	uint32_t arch;
	uint32_t page_size;
	uint64_t flags;			/* enum cryo_img_flags; unknown bits: refused */
	uint64_t created_ns;		/* CLOCK_REALTIME at checkpoint */
	uint64_t xfeatures;		/* XCR0 of the checkpointing CPU */
	uint32_t reserved[3];
	uint32_t crc;			/* CRC-32C of the bytes before this field */
} __attribute__((packed));

/*
 * Header flags name features a reader must understand to restore the image
 * exactly (a reader that does not know one refuses the image).
 */
enum cryo_img_flags {
	/* 1.1: page data may come in two passes (pre-copy, then final); see PRECOPY_DROP */
	CRYO_IMG_F_PRECOPY = 1 << 0,
};

enum cryo_section_type {
	CRYO_SEC_INDEX = 1,
	CRYO_SEC_PAD = 2,
	CRYO_SEC_STRINGS = 3,		/* NUL-terminated strings, referenced by offset */
	CRYO_SEC_TASK = 10,		/* struct cryo_img_task, one per process, parents first */
	CRYO_SEC_THREAD = 11,		/* struct cryo_img_thread, one per thread */
	CRYO_SEC_XSTATE = 12,		/* XSAVE areas of all threads, concatenated */
	CRYO_SEC_SIGINFO = 13,		/* struct cryo_img_siginfo, pending signals */
	CRYO_SEC_VMA = 20,		/* struct cryo_img_vma, in address order; id = pid */
	CRYO_SEC_PAGEMAP = 21,		/* struct cryo_img_page_run; id = pid << 32 | VMA index */
	CRYO_SEC_PAGES = 22,		/* page data of the runs just before; same id */
	CRYO_SEC_ZPAGES = 23,		/* the same, compressed: struct cryo_zpages_header,
					 * then the compressed bytes; same id */
	CRYO_SEC_FD = 30,		/* struct cryo_img_fd */
	CRYO_SEC_BLOB = 31,		/* opaque data (file or pipe content); id = blob id */
	CRYO_SEC_SHMEM = 32,		/* struct cryo_img_shmem: shared anonymous memory
					 * objects; their pages: PAGEMAP/PAGES with id
					 * CRYO_SHMEM_PAGES_ID | object index, offsets as vaddr */
	CRYO_SEC_PRECOPY_DROP = 24,	/* 1.1: struct cryo_img_page_run, in address order;
					 * id = pid: pages whose pre-copied data is stale */
};

struct cryo_section_header {
	uint32_t magic;
	uint32_t type;
	uint64_t length;		/* payload bytes */
	uint64_t id;			/* meaning depends on type */
	uint32_t entry_size;		/* tables: bytes per entry; blobs: 0; pages: page size */
	uint32_t entry_count;
	uint32_t payload_crc;		/* CRC-32C of the payload */
	uint32_t flags;			/* none defined; must be 0 */
	uint32_t reserved;
	uint32_t header_crc;		/* CRC-32C of the bytes before this field */
} __attribute__((packed));

struct cryo_img_index_entry {
	uint32_t type;
	uint32_t entry_count;
	uint64_t id;
	uint64_t offset;		/* of the section header */
	uint64_t length;		/* of the payload */
} __attribute__((packed));

struct cryo_footer {
	char magic[8];
	uint64_t index_offset;		/* of the INDEX section header */
	uint64_t file_size;		/* including this footer */
	uint32_t reserved;
	uint32_t crc;
} __attribute__((packed));

/* A string reference: byte offset into the STRINGS payload; 0 is "". */
typedef uint32_t cryo_str_t;

#define CRYO_NSIG		64
#define CRYO_RLIM_NLIMITS	16
#define CRYO_AUXV_WORDS		(2 * 64)
#define CRYO_MAX_GROUPS		256

struct cryo_img_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
} __attribute__((packed));

struct cryo_img_itimer {
	int64_t interval_sec, interval_usec;
	int64_t value_sec, value_usec;
} __attribute__((packed));

enum cryo_task_flags {
	CRYO_TASK_STOPPED = 1 << 0,	/* in group stop (SIGSTOP/SIGTSTP) */
	CRYO_TASK_ZOMBIE = 1 << 1,	/* dead, not yet reaped: IDs and exit_status only */
};

struct cryo_img_task {
	int32_t pid, ppid, pgid, sid;
	uint32_t nr_threads;
	uint32_t flags;			/* enum cryo_task_flags */
	uint32_t personality;
	uint32_t umask;
	char comm[16];
	cryo_str_t exe_path, cwd_path, root_path;
	uint32_t exit_signal;
	int32_t exit_status;		/* zombies: wait status as waitpid() reports it */
	uint32_t pad1;
	uint64_t exe_dev, exe_ino, exe_size, exe_mtime_ns;

	/* struct prctl_mm_map, minus the exe fd and auxv pointer */
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint32_t auxv_words;
	uint32_t pad0;
	uint64_t auxv[CRYO_AUXV_WORDS];

	uint64_t rlim_cur[CRYO_RLIM_NLIMITS];
	uint64_t rlim_max[CRYO_RLIM_NLIMITS];

	uint32_t uid[4];		/* real, effective, saved, fs */
	uint32_t gid[4];
	uint32_t ngroups;
	uint32_t groups[CRYO_MAX_GROUPS];
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t securebits;
	uint32_t no_new_privs;
	uint32_t dumpable;
	int32_t pdeathsig;
	uint32_t child_subreaper;
	uint32_t thp_disable;
	uint64_t timerslack_ns;

	struct cryo_img_itimer itimers[3];	/* ITIMER_REAL, _VIRTUAL, _PROF */
	struct cryo_img_sigaction sigactions[CRYO_NSIG];	/* index = signo - 1 */
} __attribute__((packed));

/* struct user_regs_struct of x86-64, field for field. */
#define CRYO_NR_GREGS 27

struct cryo_img_thread {
	int32_t tid, pid;
	uint64_t regs[CRYO_NR_GREGS];
	uint64_t sigmask;
	uint64_t xstate_offset;		/* into the XSTATE payload */
	uint32_t xstate_size;
	uint32_t sas_flags;
	uint64_t sas_sp, sas_size;
	uint64_t rseq_ptr;
	uint32_t rseq_len, rseq_sig;
	uint64_t clear_child_tid;
	uint64_t robust_list, robust_list_len;
	char comm[16];
	/* scheduling, as sched_getattr() reports it (nice included) */
	uint32_t sched_policy;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint32_t ioprio;
	uint64_t sched_flags;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t affinity_bytes;	/* of the CPU mask below */
	uint32_t pad0;
	uint8_t affinity[128];		/* CPUs 0..1023 */
} __attribute__((packed));

struct cryo_img_siginfo {
	int32_t tid;			/* 0: process-wide (shared) queue */
	int32_t pid;
	uint8_t info[128];		/* siginfo_t as the kernel reported it */
} __attribute__((packed));

enum cryo_vma_kind {
	CRYO_VMA_ANON_PRIVATE = 1,
	CRYO_VMA_ANON_SHARED,		/* MAP_SHARED|MAP_ANONYMOUS; content in image */
	CRYO_VMA_FILE_PRIVATE,		/* file pages by reference, COW pages in image */
	CRYO_VMA_FILE_SHARED,		/* by reference */
	CRYO_VMA_VVAR,			/* the kernel's own areas: never dumped */
	CRYO_VMA_VVAR_VCLOCK,
	CRYO_VMA_VDSO,
	CRYO_VMA_VSYSCALL,
};

enum cryo_vma_flags {
	CRYO_VMA_GROWSDOWN = 1 << 0,
	CRYO_VMA_DONTFORK = 1 << 1,
	CRYO_VMA_DONTDUMP = 1 << 2,
	CRYO_VMA_HUGEPAGE = 1 << 3,
	CRYO_VMA_NOHUGEPAGE = 1 << 4,
	CRYO_VMA_WIPEONFORK = 1 << 5,
	CRYO_VMA_LOCKED = 1 << 6,
	CRYO_VMA_SEQ_READ = 1 << 7,
	CRYO_VMA_RAND_READ = 1 << 8,
	CRYO_VMA_MERGEABLE = 1 << 9,
	CRYO_VMA_MAYWRITE = 1 << 10,	/* shared file maps: file opened for writing */
	CRYO_VMA_NORESERVE = 1 << 11,
	CRYO_VMA_HEAP = 1 << 12,
	CRYO_VMA_STACK = 1 << 13,
	CRYO_VMA_DELETED = 1 << 14,	/* file deleted while mapped: content in blob_id */
};

struct cryo_img_vma {
	uint64_t start, end;
	uint64_t pgoff;			/* file offset in bytes */
	uint32_t prot;			/* PROT_* */
	uint32_t kind;			/* enum cryo_vma_kind */
	uint32_t flags;			/* enum cryo_vma_flags */
	uint32_t open_flags;		/* O_RDONLY/O_RDWR for file maps */
	cryo_str_t name;		/* path or [name] as in /proc/PID/maps */
	uint32_t dev_major, dev_minor;
	uint32_t pad0;
	uint64_t ino;
	uint64_t file_size, file_mtime_ns;
	uint64_t nr_pages_dumped;
	uint64_t blob_id;		/* CRYO_VMA_DELETED: the whole file */
	uint32_t file_mode;		/* CRYO_VMA_DELETED: st_mode of the file */
	uint32_t shmem;			/* ANON_SHARED: index in the SHMEM table */
} __attribute__((packed));

/*
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, /dev/zero shared) is
 * one object however many areas and processes map it: its content is saved
 * once, and every area maps it at its offset (pgoff).
 */
enum cryo_shmem_kind {
	CRYO_SHMEM_ANON = 0,		/* MAP_SHARED|MAP_ANONYMOUS, /dev/zero */
	CRYO_SHMEM_MEMFD = 1,		/* memfd_create(): name, seals, mode, exact size */
	CRYO_SHMEM_SYSV = 2,		/* System V segment: key, id, mode, owner, size */
	CRYO_SHMEM_DELETED = 3,		/* tmpfs file deleted while mapped shared: path, mode */
};

enum cryo_sysv_flags {
	CRYO_SYSV_REMOVED = 1 << 0,	/* IPC_RMID done, still attached (SHM_DEST) */
	CRYO_SYSV_LOCKED = 1 << 1,	/* SHM_LOCK */
};

struct cryo_img_shmem {
	uint64_t id;			/* inode at checkpoint, for information */
	uint64_t size;			/* bytes, page aligned: what is saved and staged */
	uint64_t nr_pages_dumped;
	uint32_t kind;			/* enum cryo_shmem_kind */
	uint32_t seals;			/* MEMFD: F_GET_SEALS */
	cryo_str_t name;		/* MEMFD: as given to memfd_create(); DELETED: path
					 * as the maps show it ("... (deleted)") */
	uint32_t mode;			/* MEMFD, SYSV, DELETED: permission bits */
	uint64_t file_size;		/* MEMFD, DELETED: st_size; SYSV: segment size (<= size) */
	int32_t sysv_key;		/* SYSV: key it was created with (as maps shows it) */
	int32_t sysv_id;		/* SYSV: shmid */
	uint32_t sysv_uid, sysv_gid;	/* SYSV: owner */
	uint32_t sysv_flags;		/* SYSV: enum cryo_sysv_flags */
	uint32_t pad0;
} __attribute__((packed));

#define CRYO_SHMEM_PAGES_ID 0xffffffff00000000ull

/*
 * Pre-copy (1.1, CRYO_IMG_F_PRECOPY): pages copied while the process still
 * ran, before its final freeze. PAGEMAP/PAGES/ZPAGES groups with id
 * CRYO_PRECOPY_PAGES_ID | pid, runs by address across the whole address
 * space, in address order across groups. At restore they are applied to
 * the private anonymous areas of the final VMA table only (pages elsewhere
 * are ignored: the area was unmapped or replaced since), then the pages of
 * the process's PRECOPY_DROP runs are zeroed, then each area's own page
 * data is applied: later data overrides earlier.
 */
#define CRYO_PRECOPY_PAGES_ID 0xfffffffe00000000ull

enum cryo_codec {
	CRYO_CODEC_NONE = 0,
	CRYO_CODEC_ZSTD = 1,
	CRYO_CODEC_LZ4 = 2,
};

/* Start of a ZPAGES payload: each chunk decompresses on its own. */
struct cryo_zpages_header {
	uint32_t codec;			/* enum cryo_codec */
	uint32_t raw_len;		/* bytes after decompression: whole pages */
} __attribute__((packed));

#define CRYO_ZPAGES_MAX_RAW (16u << 20)

struct cryo_img_page_run {
	uint64_t vaddr;
	uint64_t nr_pages;
} __attribute__((packed));

enum cryo_fd_kind {
	CRYO_FD_REG = 1,		/* regular file, reopened by path */
	CRYO_FD_DIR,
	CRYO_FD_CHR,			/* character device by path (/dev/null...) */
	CRYO_FD_DELETED,		/* file deleted while open; content in a blob */
	CRYO_FD_PIPE,			/* pipe with both ends in the image */
	CRYO_FD_DUP,			/* same open file description as fd dup_of */
	CRYO_FD_INHERIT,		/* stdio outside the image: restorer's own */
	CRYO_FD_PROC,			/* names a task (/proc/<pid>/...): reopened late */
	CRYO_FD_PIDFD,			/* pidfd of task proc_pid: reopened late */
	CRYO_FD_MEMFD,			/* memfd: the SHMEM object `shmem` */
	CRYO_FD_FIFO,			/* named FIFO, every opener in the image (pipe_ino) */
	CRYO_FD_EXTERNAL,		/* pipe or FIFO leading outside (checkpoint --external) */
	CRYO_FD_EPOLL,			/* epoll instance: its watches in blob_id */
	CRYO_FD_EVENTFD,		/* eventfd: eventfd_count, eventfd_flags (1.3) */
	CRYO_FD_SIGNALFD,		/* signalfd: signal_mask (1.3) */
	CRYO_FD_TIMERFD,		/* timerfd: timer_* (1.3) */
};

/* eventfd_flags of a CRYO_FD_EVENTFD descriptor. */
#define CRYO_EVENTFD_SEMAPHORE	1u

/* One watch of an epoll instance (the BLOB of a CRYO_FD_EPOLL descriptor). */
struct cryo_img_epoll_watch {
	int32_t tfd;			/* the watched fd, in the same process */
	uint32_t events;		/* as registered (EPOLLET, EPOLLONESHOT...) */
	uint64_t data;
} __attribute__((packed));

/* Where the task named by a CRYO_FD_PROC / CRYO_FD_PIDFD descriptor is. */
enum cryo_proc_target {
	CRYO_TARGET_IMAGE = 1,		/* a process or thread of the image */
	CRYO_TARGET_OUTSIDE,		/* a live task outside (checked by start time) */
	CRYO_TARGET_DEAD,		/* a task already gone at checkpoint time */
};

struct cryo_img_fd {
	int32_t pid;
	int32_t fd;
	uint32_t kind;			/* enum cryo_fd_kind */
	uint32_t flags;			/* open flags incl. O_CLOEXEC, O_APPEND */
	uint64_t pos;
	cryo_str_t path;		/* as readlink /proc/PID/fd/N printed it */
	int32_t dup_of;			/* CRYO_FD_DUP: the earlier fd */
	uint64_t pipe_ino;		/* CRYO_FD_PIPE, FIFO: identifies the pipe */
	uint32_t pipe_size;		/* F_GETPIPE_SZ */
	uint32_t mode;			/* st_mode of the file */
	uint64_t blob_id;		/* content (deleted file, pipe buffer); 0 = none */
	uint64_t size, mtime_ns;	/* of the file at checkpoint */
	uint32_t rdev_major, rdev_minor;
	uint64_t file_id;		/* != 0: open file description shared with other
					 * processes; every fd with this id shares it */
	int32_t proc_pid;		/* PROC, PIDFD: the task named */
	uint32_t proc_target;		/* enum cryo_proc_target */
	uint64_t proc_starttime;	/* OUTSIDE: its start time (clock ticks after boot) */
	uint32_t shmem;			/* MEMFD: index in the SHMEM table */
	uint32_t pad1;
	/* 1.3 */
	uint64_t eventfd_count;		/* EVENTFD: the counter */
	uint64_t signal_mask;		/* SIGNALFD: bit N-1 set for signal N */
	uint32_t eventfd_flags;		/* EVENTFD: CRYO_EVENTFD_* */
	int32_t timer_clockid;		/* TIMERFD: CLOCK_* */
	uint32_t timer_flags;		/* TIMERFD: its last settime's TFD_TIMER_* flags */
	uint32_t pad2;
	uint64_t timer_ticks;		/* TIMERFD: expirations not read yet */
	uint64_t timer_value_ns;	/* TIMERFD: time to the next expiration; 0: disarmed */
	uint64_t timer_interval_ns;	/* TIMERFD: period; 0: one-shot */
} __attribute__((packed));

#endif
