/*
 * userfaultfd write-protection and PAGEMAP_SCAN, as the checkpoint's
 * pre-copy uses them (src/dump/precopy.c). Debian 12's kernel headers
 * predate both WP_ASYNC (Linux 6.7) and PAGEMAP_SCAN (6.7): the few
 * definitions needed are here, with the kernel's values.
 */
#ifndef CRYO_KERNEL_UFFD_H
#define CRYO_KERNEL_UFFD_H

#include <linux/userfaultfd.h>
#include <stdint.h>
#include <sys/ioctl.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1ULL << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1ULL << 15)
#endif

struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

struct pm_region {
	uint64_t start, end, categories;
};

#define PM_SCAN_IOCTL		_IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING	(1ULL << 0)	/* write-protect the pages that match */
#define PM_SCAN_CHECK_WPASYNC	(1ULL << 1)	/* fail on areas not registered WP_ASYNC */

#define PM_IS_WPALLOWED		(1ULL << 0)	/* in an area registered WP_ASYNC */
#define PM_IS_WRITTEN		(1ULL << 1)	/* written since write-protected */
#define PM_IS_FILE		(1ULL << 2)	/* not an anonymous page */
#define PM_IS_PRESENT		(1ULL << 3)
#define PM_IS_SWAPPED		(1ULL << 4)
#define PM_IS_PFNZERO		(1ULL << 5)	/* the kernel's (huge) zero page */

#endif
