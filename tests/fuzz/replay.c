// SPDX-License-Identifier: Apache-2.0
/*
 * Replays fuzz inputs (files, or every file in directories) through a libFuzzer target.
 * A replay that ran nothing proves nothing: a missing, unreadable or empty
 * corpus, or an input that cannot be read, is a failure (exit 1).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Return: 0 when the input ran, -1 (after a message) when it could not be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n = -1;

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) == 0)
		n = ftell(f);
	if (n >= 0 && fseek(f, 0, SEEK_SET) == 0)
		buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

/*
 * Every regular, non-hidden file in @dir; adds the inputs run to *@total.
 * Return: 0, or -1 (after a message) if one could not be read or none was there.
 */
static int replay_dir(const char *dir, int *total)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int count = 0, bad = 0;

	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	errno = 0;
	while ((de = readdir(d))) {
		char p[4096];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) >= sizeof(p)) {
			fprintf(stderr, "replay: %s/%s: path too long\n", dir, de->d_name);
			bad++;
			continue;
		}
		if (stat(p, &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", p, strerror(errno));
			bad++;
		} else if (S_ISREG(st.st_mode)) {
			if (replay_file(p) == 0)
				count++;
			else
				bad++;
		}
		errno = 0;
	}
	if (errno) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		bad++;
	}
	closedir(d);
	*total += count;
	if (bad)
		return -1;
	if (!count) {
		fprintf(stderr, "replay: %s: no inputs (an empty corpus tests nothing)\n", dir);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int count = 0, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			failed = 1;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			r = replay_dir(argv[i], &count);
		} else {
			r = replay_file(argv[i]);
			count += r == 0;
		}
		if (r < 0)
			failed = 1;
	}
	printf("replayed %d inputs\n", count);
	return failed || !count ? 1 : 0;
}
