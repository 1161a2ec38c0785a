// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target for disk image headers: the names a qcow2 or vmdk makes QEMU open. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "fuzz.h"
#include "sandbox/diskimg.h"

struct mem {
	const uint8_t *p;
	size_t n;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t n, uint64_t off)
{
	const struct mem *m = ctx;

	if (off >= m->n)
		return 0;
	if (n > m->n - off)
		n = m->n - (size_t)off;
	memcpy(buf, m->p + off, n);
	return (ssize_t)n;
}

static void check_name(const char *s, size_t cap)
{
	CHECK(memchr(s, '\0', cap) != NULL);
}

static void check_info(const struct dimg_info *i, enum dimg_format f)
{
	CHECK(i->format == f);
	check_name(i->backing, sizeof(i->backing));
	check_name(i->backing_format, sizeof(i->backing_format));
	check_name(i->data_file, sizeof(i->data_file));
	CHECK(!i->has_backing || i->backing[0]);
	CHECK(!i->has_data_file || (f == DIMG_QCOW2 && i->data_file[0]));
	CHECK(i->nextents <= DIMG_MAX_EXTENTS);
	CHECK(f == DIMG_VMDK || i->nextents == 0);
	for (size_t k = 0; k < i->nextents; k++)
		check_name(i->extents[k], sizeof(i->extents[k]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	struct dimg_reader rd = { .pread = mem_pread, .ctx = &m, .size = size };
	static struct dimg_info info;
	enum dimg_format f;
	int r = dimg_detect(&rd, &f);

	CHECK(r == 0 || r == -ENOTSUP);
	/* Every format, whatever the probe says: a backing format names the driver. */
	for (int k = DIMG_RAW; k <= DIMG_VMDK; k++) {
		r = dimg_parse(&rd, (enum dimg_format)k, &info);
		CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP);
		if (r == 0)
			check_info(&info, (enum dimg_format)k);
	}
	/* A file larger than its bytes (holes past the end read as zeros). */
	rd.size = (uint64_t)size + 4096;
	m.n = size;
	r = dimg_parse(&rd, DIMG_QCOW2, &info);
	CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP);
	return 0;
}
