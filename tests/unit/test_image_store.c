// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the layer cache's locks: sandboxes' shared holds, and deletion that waits for
 * them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/store.h"
#include "store/db.h"

#define LAYER_A	 "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LAYER_B	 "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define MANIFEST "sha256:1111111111111111111111111111111111111111111111111111111111111111"

static char home[64];

static int setup_home(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/msb-store-test.XXXXXX");
	if (!mkdtemp(home))
		return -1;
	setenv("MSB_HOME", home, 1);
	return 0;
}

static int remove_home(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	return system(cmd) == 0 ? 0 : -1;
}

static void free_strv(char **v)
{
	for (char **o = v; o && *o; o++)
		free(*o);
	free(v);
}

/* Records the image @ref, made of layers A and B. */
static void record(struct db *db, const char *ref)
{
	struct layer_record l[2] = {
		{ .diff_id = LAYER_A, .digest = LAYER_A, .media_type = "x" },
		{ .diff_id = LAYER_B, .digest = LAYER_B, .media_type = "x" },
	};
	struct image_record img = { .reference = (char *)ref,
				    .manifest_digest = MANIFEST,
				    .config_digest = MANIFEST,
				    .manifest = "{}",
				    .config = "{}",
				    .pulled_at = "2024-01-01T00:00:00Z",
				    .layers = l,
				    .nlayers = 2 };
	struct msb_err *err = NULL;

	assert_int_equal(db_image_put(db, &img, &err), 0);
}

static void make_layer(const char *diff_id)
{
	char *f = layer_file(diff_id), *dir = strdup(f);
	int fd;

	assert_non_null(f);
	*strrchr(dir, '/') = '\0';
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	free(dir);
	free(f);
}

static bool exists(const char *diff_id)
{
	char *f = layer_file(diff_id);
	bool r = access(f, F_OK) == 0;

	free(f);
	return r;
}

/* Whether someone else could take the layer's lock exclusively right now. */
static bool lock_free(const char *diff_id)
{
	char *l = layer_lock_file(diff_id);
	int fd = open(l, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	bool r;

	assert_true(fd >= 0);
	r = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	free(l);
	return r;
}

static struct image_record two_layers(const char *ref)
{
	static struct layer_record l[2] = { { .diff_id = LAYER_A }, { .diff_id = LAYER_B } };

	return (struct image_record){ .reference = (char *)ref, .layers = l, .nlayers = 2 };
}

static void test_hold_locks_every_layer_shared(void **state)
{
	struct image_record img = two_layers("docker.io/library/x:1");
	struct msb_err *err = NULL;
	int *fds = NULL, *fds2 = NULL;

	(void)state;
	make_layer(LAYER_A);
	make_layer(LAYER_B);
	assert_int_equal(image_hold_layers(&img, &fds, &err), 0);
	assert_null(err);
	assert_non_null(fds);
	assert_false(lock_free(LAYER_A));
	assert_false(lock_free(LAYER_B));
	/* Shared: a second sandbox holds them too. */
	assert_int_equal(image_hold_layers(&img, &fds2, &err), 0);
	image_release_layers(fds2, img.nlayers);
	assert_false(lock_free(LAYER_A));
	image_release_layers(fds, img.nlayers);
	assert_true(lock_free(LAYER_A));
	assert_true(lock_free(LAYER_B));
}

static void test_hold_refuses_a_missing_layer_and_holds_nothing(void **state)
{
	struct image_record img = two_layers("docker.io/library/x:1");
	struct msb_err *err = NULL;
	int *fds = (int *)1;
	char *f;

	(void)state;
	make_layer(LAYER_A);
	make_layer(LAYER_B);
	f = layer_file(LAYER_B);
	assert_int_equal(unlink(f), 0);
	free(f);
	assert_int_equal(image_hold_layers(&img, &fds, &err), -1);
	assert_null(fds);
	assert_non_null(err);
	assert_string_equal(err->msg, "image x:1: layer " LAYER_B " is missing from the cache "
				      "(pull it again with 'msb pull -f x:1')");
	msb_err_free(err);
	assert_true(lock_free(LAYER_A));
	assert_true(lock_free(LAYER_B));
}

/* rmi's deletion waits while a sandbox holds the layer, then deletes it. */
static void test_remove_waits_for_holders(void **state)
{
	struct image_record img = two_layers("docker.io/library/x:1");
	struct msb_err *err = NULL;
	struct db *db = NULL;
	char **orphans = NULL;
	int *fds = NULL, st = 0;
	pid_t pid;

	(void)state;
	make_layer(LAYER_A);
	make_layer(LAYER_B);
	assert_int_equal(db_open(&db, &err), 0);
	record(db, "docker.io/library/x:1");
	assert_int_equal(image_hold_layers(&img, &fds, &err), 0);
	assert_int_equal(db_image_delete(db, "docker.io/library/x:1", &orphans, &err), 0);
	assert_non_null(orphans[0]);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct db *cdb = NULL;
		int r;

		/* Another process: not sharing the parent's locks through inherited fds. */
		for (size_t i = 0; i < img.nlayers; i++)
			close(fds[i]);
		r = db_open(&cdb, NULL) < 0 ? -1 : image_remove_layer(cdb, LAYER_A, NULL);

		db_close(cdb);
		_exit(r == 1 ? 0 : 1);
	}
	usleep(300 * 1000);
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0); /* still waiting */
	assert_true(exists(LAYER_A));
	image_release_layers(fds, img.nlayers);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(exists(LAYER_A));
	free_strv(orphans);
	db_close(db);
}

/* A layer an image came to use again (a pull recorded it meanwhile) is kept. */
static void test_remove_keeps_a_layer_in_use_again(void **state)
{
	struct msb_err *err = NULL;
	struct db *db = NULL;
	char **orphans = NULL;

	(void)state;
	make_layer(LAYER_A);
	make_layer(LAYER_B);
	assert_int_equal(db_open(&db, &err), 0);
	record(db, "docker.io/library/x:1");
	assert_int_equal(db_image_delete(db, "docker.io/library/x:1", &orphans, &err), 0);
	free_strv(orphans);
	record(db, "docker.io/library/y:1");
	assert_int_equal(image_remove_layer(db, LAYER_A, &err), 0);
	assert_true(exists(LAYER_A));
	assert_int_equal(db_image_delete(db, "docker.io/library/y:1", &orphans, &err), 0);
	free_strv(orphans);
	assert_int_equal(image_remove_layer(db, LAYER_A, &err), 1);
	assert_false(exists(LAYER_A));
	assert_null(err);
	db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hold_locks_every_layer_shared),
		cmocka_unit_test(test_hold_refuses_a_missing_layer_and_holds_nothing),
		cmocka_unit_test(test_remove_waits_for_holders),
		cmocka_unit_test(test_remove_keeps_a_layer_in_use_again),
	};

	return cmocka_run_group_tests(tests, setup_home, remove_home);
}
