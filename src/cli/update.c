// SPDX-License-Identifier: Apache-2.0
/*
 * msb self update: install the newest release from the update channel, or
 * go back to the one before (--rollback). And msb --version's long form.
 *
 * The channel is a directory, local (an absolute path or file://) or
 * http(s)://: config.json's "update": {"url": ...}, else UPDATE_URL. It
 * holds what `make dist SIGNING_KEY=...` writes: latest-linux-ARCH.json, its
 * Ed25519 signature latest-linux-ARCH.json.sig (the 64 raw bytes), and the
 * tarballs. The manifest names one release:
 *
 *   {"name": "msb", "version": "0.2.0", "commit": "...", "arch": "x86_64",
 *    "tarball": "msb-0.2.0-linux-x86_64.tar.gz", "sha256": "<hex>", "size": N}
 *
 * Nothing is touched before the signature (against the key built into this
 * msb, release.c) and then the tarball's size and sha256 check out.
 *
 * The install is scripts/setup.sh's layout under MSB_HOME:
 *
 *   releases/<version>-<sha12>/{bin/msb, lib/vmlinux, lib/initrd.cpio}
 *   releases/current -> <dir>      releases/previous -> <dir>
 *   bin/msb -> ../releases/current/bin/msb
 *   lib/vmlinux, lib/initrd.cpio -> ../releases/current/lib/...
 *
 * msb finds its guest files beside its own real path, so a release is whole
 * in its directory and the switch is one rename(2) of a new `current` link
 * over the old: killed before it, the old msb is installed; after it, the
 * new one. A release is unpacked under a temporary name and renamed into
 * place only when complete; leftovers of a killed update are swept by the
 * next. Two releases are kept, current and previous (for --rollback).
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/cli.h"
#include "image/digest.h"
#include "image/regconfig.h"
#include "sandbox/sandbox.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/spawn.h"

#define UPDATE_URL    "https://releases.microsandbox.dev/msb/stable"
#define MANIFEST_MAX  (64u << 10)
#define SIG_LEN	      64
#define TARBALL_MAX   (4ull << 30)
#define UNPACKED_MAX  (16ull << 30)
#define UNPACK_FILES  256
#define VERSION_MAX   64
#define STALL_S	      60L
#define SMALL_FETCH_S 120L
#define AGENT_IDENT   "msb-agentd-version "

static void update_usage(void)
{
	printf("Usage: msb self update [OPTIONS]\n"
	       "       msb self upgrade [OPTIONS]\n\n"
	       "Install the newest msb release from the update channel: config.json's\n"
	       "\"update\": {\"url\": URL} (a directory, local or http(s)://), by default\n"
	       "%s.\n"
	       "The release's signature and sha256 are verified before anything changes, and\n"
	       "the switch is atomic: killed at any point, either the old or the new msb is\n"
	       "installed. The version before is kept for --rollback.\n\n"
	       "Options:\n"
	       "  -f, --force      Re-download even if already on the latest version (or\n"
	       "                   install a release older than this one)\n"
	       "      --rollback   Go back to the version installed before the last update\n",
	       UPDATE_URL);
}

/* The test build's kill points: each stage of an update can be a SIGKILL. */
static void stage(const char *name)
{
	const char *at = getenv("MSB_TEST_UPDATE_KILL");

	if (msb_release_testing && at && !strcmp(at, name))
		raise(SIGKILL);
}

/* --- versions ------------------------------------------------------------- */

/* One dotted part of a version's release (digits; anything else in it skipped). */
static unsigned long long version_part(const char **s)
{
	unsigned long long v = 0;

	for (; **s >= '0' && **s <= '9'; (*s)++)
		if (v < 100000000000000000ull)
			v = v * 10 + (unsigned)(**s - '0');
	while (**s && **s != '.' && **s != '-')
		(*s)++;
	if (**s == '.')
		(*s)++;
	return v;
}

/*
 * What follows a version's '-': a build from a git checkout after that release
 * (git describe: "5-gabc123", "gabc123", either with "-dirty", or "dirty"):
 * 1; a pre-release of it ("rc1"): -1.
 */
static int suffix_rank(const char *s)
{
	size_t n = strspn(s, "0123456789");

	if (!strcmp(s, "dirty"))
		return 1;
	if (n && s[n] == '-')
		s += n + 1;
	if (s[0] == 'g' && strspn(s + 1, "0123456789abcdef") >= 4) {
		s += 1 + strspn(s + 1, "0123456789abcdef");
		if (!*s || !strcmp(s, "-dirty"))
			return 1;
	}
	return -1;
}

/*
 * Releases compare as dotted numbers ("1.2" is "1.2.0"). Then a release sorts
 * before the builds made after it ("0.2.0-5-gabc") and after its pre-releases
 * ("0.2.0-rc1"); suffixes of one rank compare by their leading number, then as
 * strings.
 */
int version_cmp(const char *a, const char *b)
{
	int ra, rb, c;

	while ((*a && *a != '-') || (*b && *b != '-')) {
		unsigned long long x = version_part(&a), y = version_part(&b);

		if (x != y)
			return x < y ? -1 : 1;
	}
	ra = *a ? suffix_rank(a + 1) : 0;
	rb = *b ? suffix_rank(b + 1) : 0;
	if (ra != rb)
		return ra < rb ? -1 : 1;
	if (!ra)
		return 0;
	a++;
	b++;
	{
		unsigned long long x = strtoull(a, NULL, 10), y = strtoull(b, NULL, 10);

		if (x != y)
			return x < y ? -1 : 1;
	}
	c = strcmp(a, b);
	return (c > 0) - (c < 0);
}

static bool version_ok(const char *v)
{
	size_t n = strlen(v);

	if (!n || n > VERSION_MAX || v[0] < '0' || v[0] > '9')
		return false;
	return strspn(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-_") == n;
}

/* --- fetching from the channel --------------------------------------------- */

/* Where fetched bytes go: memory (up to @max), or @fd with a running sha256. */
struct sink {
	char *mem;
	size_t len;
	int fd;
	struct sha256 h;
	uint64_t n, max;
	bool over, failed, progress;
	const char *what;
};

static int sink_put(struct sink *s, const void *p, size_t n)
{
	if (n > s->max - s->n) {
		s->over = true;
		return -1;
	}
	if (s->fd >= 0) {
		if (write_all(s->fd, p, n) < 0) {
			s->failed = true;
			return -1;
		}
		sha256_update(&s->h, p, n);
	} else {
		char *m = realloc(s->mem, s->len + n + 1);

		if (!m) {
			s->failed = true;
			return -1;
		}
		memcpy(m + s->len, p, n);
		s->mem = m;
		s->len += n;
		s->mem[s->len] = '\0';
	}
	s->n += n;
	return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	return sink_put(arg, p, size * n) < 0 ? 0 : size * n;
}

static int on_progress(void *arg, curl_off_t total, curl_off_t now, curl_off_t ut, curl_off_t un)
{
	const struct sink *s = arg;

	(void)ut;
	(void)un;
	if (s->progress && total > 0)
		fprintf(stderr, "\rmsb: downloading %s: %lld/%lld MiB", s->what,
			(long long)(now >> 20), (long long)(total >> 20));
	return 0;
}

static bool is_http(const char *url)
{
	return !strncmp(url, "http://", 7) || !strncmp(url, "https://", 8);
}

/* @name from the channel @url into @s. Return: 0, or -1 with @err. */
static int fetch(const char *url, const char *name, struct sink *s, struct msb_err **err)
{
	_cleanup_free_ char *full = NULL;

	if (!is_http(url)) {
		const char *dir = strncmp(url, "file://", 7) ? url : url + 7;
		_cleanup_close_ int fd = -1;
		char buf[1 << 16];
		ssize_t r;

		full = path_join(dir, name);
		if (!full)
			return msb_err_sys(err, ENOMEM, "%s", name);
		fd = open(full, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return msb_err_set(
				err, errno,
				"update channel: cannot read %s: %s (check update.url in "
				"config.json)",
				full, strerror(errno));
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return msb_err_sys(err, errno, "update channel: cannot read %s",
						   full);
			if (sink_put(s, buf, (size_t)r) < 0)
				break;
		}
	} else {
		CURL *h = curl_easy_init();
		char errbuf[CURL_ERROR_SIZE] = "";
		long status = 0;
		CURLcode rc;

		if (!h || asprintf(&full, "%s%s%s", url, url[strlen(url) - 1] == '/' ? "" : "/",
				   name) < 0) {
			full = NULL;
			if (h)
				curl_easy_cleanup(h);
			return msb_err_sys(err, ENOMEM, "update channel");
		}
		curl_easy_setopt(h, CURLOPT_URL, full);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		/* An https channel is not redirected to plain http. */
		curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
				 strncmp(url, "https://", 8) ? "http,https" : "https");
		if (s->fd < 0) /* the manifest and signature: small, so a bound on the whole */
			curl_easy_setopt(h, CURLOPT_TIMEOUT, SMALL_FETCH_S);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, STALL_S);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "msb/" MSB_VERSION);
		curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "identity");
		curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, s->progress ? 0L : 1L);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
		if (s->progress)
			fputc('\n', stderr);
		if (rc != CURLE_OK && !s->over && !s->failed)
			return msb_err_set(
				err, EIO,
				"update channel: cannot fetch %s: %s (check update.url in "
				"config.json)",
				full, *errbuf ? errbuf : curl_easy_strerror(rc));
	}
	if (s->over && s->fd >= 0)
		return msb_err_set(
			err, EFBIG,
			"update channel: %s is larger than the signed manifest says (%llu "
			"bytes); nothing changed",
			name, (unsigned long long)s->max);
	if (s->over)
		return msb_err_set(err, EFBIG,
				   "update channel: %s is larger than %llu bytes (not an msb "
				   "release)",
				   full, (unsigned long long)s->max);
	if (s->failed)
		return msb_err_sys(err, errno ? errno : EIO, "update: cannot store %s", name);
	return 0;
}

/* --- the manifest --------------------------------------------------------- */

struct release {
	char version[VERSION_MAX + 1];
	char commit[65];
	char tarball[256];
	char sha256[65];
	uint64_t size;
};

static bool verify_sig(const char *msg, size_t len, const unsigned char *sig, size_t siglen)
{
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *ctx = NULL;
	bool ok = false;

	static const unsigned char zero[32];

	if (!msb_release_key_set || siglen != SIG_LEN || !memcmp(msb_release_key, zero, 32))
		return false;
	key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, msb_release_key, 32);
	ctx = EVP_MD_CTX_new();
	if (key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
		ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return ok;
}

static const char *str_field(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* The signed manifest @text into @rel. Return: 0, or -1 with @err. */
static int parse_manifest(const char *text, size_t len, const char *arch, struct release *rel,
			  struct msb_err **err)
{
	json_error_t je;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	const char *name, *version, *commit, *tarball, *sha, *a;
	json_int_t size;
	int r = -1;

	if (!o || !json_is_object(o)) {
		msb_err_set(err, EINVAL, "update channel: the manifest is not a JSON object (%s)",
			    o ? "not an object" : je.text);
		goto out;
	}
	name = str_field(o, "name");
	version = str_field(o, "version");
	commit = str_field(o, "commit");
	tarball = str_field(o, "tarball");
	sha = str_field(o, "sha256");
	a = str_field(o, "arch");
	size = json_integer_value(json_object_get(o, "size"));
	if (!name || strcmp(name, "msb") != 0) {
		msb_err_set(err, EINVAL, "update channel: the manifest is not msb's");
	} else if (!version || !version_ok(version)) {
		msb_err_set(err, EINVAL, "update channel: the manifest's version is not a version");
	} else if (!a || strcmp(a, arch) != 0) {
		msb_err_set(err, EINVAL, "update channel: the release is for %s, not this %s",
			    a ? a : "no architecture", arch);
	} else if (!tarball || !*tarball || tarball[0] == '.' || strlen(tarball) >= 256 ||
		   strspn(tarball, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ."
				   "+-_") != strlen(tarball)) {
		msb_err_set(err, EINVAL,
			    "update channel: the manifest's tarball is not a file name");
	} else if (!hex64(sha)) {
		msb_err_set(err, EINVAL,
			    "update channel: the manifest's sha256 is not 64 hex digits");
	} else if (size <= 0 || (uint64_t)size > TARBALL_MAX) {
		msb_err_set(err, EINVAL, "update channel: the manifest's size is out of range");
	} else {
		snprintf(rel->version, sizeof(rel->version), "%s", version);
		snprintf(rel->commit, sizeof(rel->commit), "%s", commit ? commit : "");
		snprintf(rel->tarball, sizeof(rel->tarball), "%s", tarball);
		snprintf(rel->sha256, sizeof(rel->sha256), "%s", sha);
		rel->size = (uint64_t)size;
		r = 0;
	}
out:
	json_decref(o);
	return r;
}

/* The channel's URL: config.json's update.url, else the default. */
static int channel_url(char **out, struct msb_err **err)
{
	json_t *cfg = NULL, *u;
	const char *url;

	if (msbcfg_load(&cfg, err) < 0)
		return -1;
	u = json_object_get(json_object_get(cfg, "update"), "url");
	if (u && !json_is_string(u)) {
		json_decref(cfg);
		return msb_err_set(err, EINVAL,
				   "config.json: update.url must be a string (a directory, or an "
				   "http(s):// URL)");
	}
	url = u ? json_string_value(u) : UPDATE_URL;
	if (!is_http(url) && url[0] != '/' && strncmp(url, "file:///", 8) != 0) {
		msb_err_set(err, EINVAL,
			    "config.json: update.url \"%s\" is neither an absolute directory nor a "
			    "file://, http:// or https:// URL",
			    url);
		json_decref(cfg);
		return -1;
	}
	*out = strdup(url);
	json_decref(cfg);
	return *out ? 0 : msb_err_sys(err, ENOMEM, "update.url");
}

/* --- unpacking ------------------------------------------------------------- */

/* A member's path inside the release (its top directory dropped), or NULL to refuse it. */
static const char *member_path(const char *p)
{
	const char *slash;

	if (!strncmp(p, "./", 2))
		p += 2;
	/* make dist's one top directory, msb-VERSION-linux-ARCH/ */
	if (!strncmp(p, "msb-", 4) && (slash = strchr(p, '/')))
		p = slash + 1;
	if (!*p) /* that directory itself */
		return p;
	if (p[0] == '/' || path_has_dotdot(p) || strstr(p, "//"))
		return NULL;
	return p;
}

static bool wanted(const char *p)
{
	return !strncmp(p, "bin/", 4) || !strncmp(p, "lib/", 4) || !strncmp(p, "share/", 6) ||
	       !strcmp(p, "README.md") || !strcmp(p, "bin") || !strcmp(p, "lib") ||
	       !strcmp(p, "share");
}

static int unpack_file(struct archive *a, int dirfd, const char *path, mode_t mode, uint64_t *total,
		       struct msb_err **err)
{
	_cleanup_close_ int fd = -1;
	const void *buf;
	size_t n;
	la_int64_t off;
	int r;

	fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return msb_err_sys(err, errno, "update: cannot write %s", path);
	while ((r = archive_read_data_block(a, &buf, &n, &off)) == ARCHIVE_OK) {
		if (n > UNPACKED_MAX - *total)
			return msb_err_set(err, EFBIG, "update: the release unpacks to too much");
		*total += n;
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return msb_err_sys(err, errno ? errno : EIO, "update: cannot write %s",
					   path);
	}
	if (r != ARCHIVE_EOF)
		return msb_err_set(err, EIO, "update: the release tarball is damaged: %s",
				   archive_error_string(a));
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0)
		return msb_err_sys(err, errno, "update: cannot write %s", path);
	return 0;
}

static int mkdirs_at(int dirfd, const char *path)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s", path);
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdirat(dirfd, p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return 0;
}

/* The tarball open at @tfd into the empty directory @dirfd. Return: 0, or -1 with @err. */
static int unpack(int tfd, int dirfd, struct msb_err **err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	uint64_t total = 0;
	unsigned files = 0;
	int r = 0, k;

	if (!a)
		return msb_err_sys(err, ENOMEM, "update");
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, tfd, 1 << 16) != ARCHIVE_OK) {
		r = msb_err_set(err, EIO, "update: cannot read the release tarball: %s",
				archive_error_string(a));
		goto out;
	}
	while ((k = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *path = member_path(archive_entry_pathname(e));
		mode_t type = archive_entry_filetype(e);
		char clean[PATH_MAX];
		size_t n;

		if (!path || strlen(path) >= sizeof(clean)) {
			r = msb_err_set(err, EINVAL,
					"update: the release has a member outside its directory");
			goto out;
		}
		snprintf(clean, sizeof(clean), "%s", path);
		n = strlen(clean);
		while (n && clean[n - 1] == '/')
			clean[--n] = '\0';
		if (!*clean || !wanted(clean))
			continue;
		if (++files > UNPACK_FILES) {
			r = msb_err_set(err, EFBIG, "update: the release has too many files");
			goto out;
		}
		if (mkdirs_at(dirfd, clean) < 0) {
			r = msb_err_sys(err, errno, "update: cannot make the directories of %s",
					clean);
			goto out;
		}
		if (type == AE_IFDIR) {
			if (mkdirat(dirfd, clean, 0755) < 0 && errno != EEXIST) {
				r = msb_err_sys(err, errno, "update: cannot make %s", clean);
				goto out;
			}
			continue;
		}
		if (type != AE_IFREG) {
			r = msb_err_set(err, EINVAL,
					"update: the release's %s is not a regular file", clean);
			goto out;
		}
		if (unpack_file(a, dirfd, clean, strncmp(clean, "bin/", 4) ? 0644 : 0755, &total,
				err) < 0) {
			r = -1;
			goto out;
		}
		stage("unpacking");
	}
	if (k != ARCHIVE_EOF)
		r = msb_err_set(err, EIO, "update: the release tarball is damaged: %s",
				archive_error_string(a));
out:
	archive_read_free(a);
	return r;
}

/* --- the install ------------------------------------------------------------ */

/* fsync(2) of the directory @name in @dirfd: its entries are on disk. */
static int fsync_dir_at(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 || fsync(fd) < 0 ? -1 : 0;
}

/* @link (a name in @dirfd) made to point at @target, atomically. Return: 0, or -errno. */
static int set_link(int dirfd, const char *link, const char *target)
{
	char tmp[NAME_MAX + 1];

	snprintf(tmp, sizeof(tmp), ".%s.tmp", link);
	unlinkat(dirfd, tmp, 0);
	if (symlinkat(target, dirfd, tmp) < 0 || renameat(dirfd, tmp, dirfd, link) < 0) {
		int e = errno;

		unlinkat(dirfd, tmp, 0);
		return -e;
	}
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* The release directory a link in releases/ names (its last component), or "" when none. */
static void link_target(int dirfd, const char *link, char *out, size_t cap)
{
	ssize_t n = readlinkat(dirfd, link, out, cap - 1);

	out[n > 0 ? n : 0] = '\0';
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	if (n > 0 && strchr(out, '/'))
		memmove(out, strrchr(out, '/') + 1, strlen(strrchr(out, '/')));
}

/*
 * Is releases/@name's msb the program of a running process (a supervisor
 * started two updates ago)? Its guest files must stay while it runs.
 */
static bool release_running(int dirfd, const char *name)
{
	_cleanup_closedir_ DIR *proc = NULL;
	char exe[NAME_MAX + 16];
	struct dirent *de;
	struct stat rel, st;

	snprintf(exe, sizeof(exe), "%s/bin/msb", name);
	if (fstatat(dirfd, exe, &rel, 0) < 0 || !(proc = opendir("/proc")))
		return false;
	while ((de = readdir(proc))) {
		char p[64];

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%.32s/exe", de->d_name);
		if (stat(p, &st) == 0 && st.st_ino == rel.st_ino && st.st_dev == rel.st_dev)
			return true;
	}
	return false;
}

/*
 * Leftovers of a killed update, and (@old_releases) releases neither current
 * nor previous whose msb no process runs.
 */
static void sweep(int dirfd, const char *dirpath, bool old_releases)
{
	char cur[NAME_MAX + 1], prev[NAME_MAX + 1];
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own offset */

	link_target(dirfd, "current", cur, sizeof(cur));
	link_target(dirfd, "previous", prev, sizeof(prev));
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		bool tmp = !strncmp(n, ".dl-", 4) || !strncmp(n, ".new-", 5) ||
			   (n[0] == '.' && strlen(n) > 4 && !strcmp(n + strlen(n) - 4, ".tmp"));
		bool stale = old_releases && n[0] != '.' && strcmp(n, "current") != 0 &&
			     strcmp(n, "previous") != 0 && strcmp(n, cur) != 0 &&
			     strcmp(n, prev) != 0;

		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".lock") || !(tmp || stale))
			continue;
		if (stale && release_running(dirfd, n))
			continue;
		if (unlinkat(dirfd, n, 0) < 0) {
			_cleanup_free_ char *p = path_join(dirpath, n);

			if (p)
				rm_rf(p);
		}
	}
}

/* The version @exe says it is ("msb VERSION" on its first line), into @out. */
static int exe_version(const char *exe, char *out, size_t cap)
{
	char buf[512];
	char *argv[] = { (char *)exe, (char *)"--version", NULL };
	int st = spawn_io(argv, NULL, buf, sizeof(buf));
	char *nl;
	size_t n;

	if (st != 0 || strncmp(buf, "msb ", 4) != 0)
		return -1;
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	n = strlen(buf + 4);
	if (n >= cap)
		return -1;
	memcpy(out, buf + 4, n + 1);
	return 0;
}

/* What keeps @exe from running, as ldd tells it: the libraries not found, for the user. */
static void missing_libs(const char *exe, char *out, size_t cap)
{
	char buf[4096];
	char *argv[] = { (char *)"ldd", (char *)exe, NULL };
	size_t k = 0;

	out[0] = '\0';
	if (spawn_io(argv, NULL, buf, sizeof(buf)) >= 0) {
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			char *arrow = strstr(line, " => not found");

			if (!arrow)
				continue;
			*arrow = '\0';
			line += strspn(line, " \t");
			k += (size_t)snprintf(out + k, k < cap ? cap - k : 0, "%s%s",
					      k ? " " : "missing libraries: ", line);
		}
	}
	if (!out[0])
		snprintf(out, cap, "it did not answer --version");
}

struct install {
	const char *home;
	char *bin; /* $MSB_HOME/bin */
	char *lib; /* $MSB_HOME/lib */
	char *rel; /* $MSB_HOME/releases */
	int relfd;
	int lockfd;
};

static void install_free(struct install *in)
{
	free(in->bin);
	free(in->lib);
	free(in->rel);
	if (in->relfd >= 0)
		close(in->relfd);
	if (in->lockfd >= 0)
		close(in->lockfd);
}

/*
 * This msb must be setup.sh's: $MSB_HOME/bin/msb is this very program.
 * Then releases/ is opened and locked against a second update.
 */
static int install_open(struct install *in, struct msb_err **err)
{
	_cleanup_free_ char *self = realpath("/proc/self/exe", NULL), *exe = NULL, *inst = NULL,
			    *lock = NULL;

	in->relfd = in->lockfd = -1;
	in->home = msb_home();
	if (!in->home)
		return msb_err_set(err, EINVAL,
				   "self update: no home directory (set MSB_HOME or HOME)");
	in->bin = path_join(in->home, "bin");
	in->lib = path_join(in->home, "lib");
	in->rel = path_join(in->home, "releases");
	exe = path_join(in->home, "bin/msb");
	if (!self)
		return msb_err_set(err, ENOENT,
				   "self update: this msb's file is gone (run %s/bin/msb self "
				   "update)",
				   in->home);
	if (!in->bin || !in->lib || !in->rel || !exe)
		return msb_err_sys(err, ENOMEM, "self update");
	inst = realpath(exe, NULL);
	if (!inst || strcmp(inst, self) != 0)
		return msb_err_set(err, EINVAL,
				   "msb self update updates a setup.sh install; this msb is %s "
				   "(%s; update it with your package manager, or git pull and "
				   "make)",
				   self,
				   inst ? "run the installed one instead" : "none is installed");
	if (mkdir(in->rel, 0755) < 0 && errno != EEXIST)
		return msb_err_sys(err, errno, "self update: cannot make %s", in->rel);
	in->relfd = open(in->rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lock = path_join(in->rel, ".lock");
	if (in->relfd < 0 || !lock)
		return msb_err_sys(err, errno, "self update: cannot open %s", in->rel);
	in->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (in->lockfd < 0)
		return msb_err_sys(err, errno, "self update: cannot open %s", lock);
	if (flock(in->lockfd, LOCK_EX | LOCK_NB) < 0)
		return msb_err_set(
			err, EBUSY,
			"self update: another msb self update or setup.sh is installing msb "
			"here (wait for it)");
	return 0;
}

/*
 * bin/msb and lib/'s files as links through releases/current: already so
 * after the first update; an install from before releases/ is turned into it
 * here, each link in one rename. bin/msb first: the msb it then names finds
 * its guest files beside itself, in its release, so lib/ may follow later.
 */
static int point_links(struct install *in, struct msb_err **err)
{
	static const char *const libs[] = { "vmlinux", "initrd.cpio" };
	_cleanup_close_ int bfd = -1, lfd = -1;
	char have[PATH_MAX], want[PATH_MAX];
	const char *w = "../releases/current/bin/msb";
	ssize_t n;
	int r;

	if (mkdir(in->lib, 0755) < 0 && errno != EEXIST)
		return msb_err_sys(err, errno, "self update: cannot make %s", in->lib);
	bfd = open(in->bin, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lfd = open(in->lib, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0 || lfd < 0)
		return msb_err_sys(err, errno, "self update: cannot open %s", in->home);
	n = readlinkat(bfd, "msb", have, sizeof(have) - 1);
	if (n <= 0 || (size_t)n != strlen(w) || memcmp(have, w, (size_t)n) != 0) {
		r = set_link(bfd, "msb", w);
		if (r < 0)
			return msb_err_sys(err, -r, "self update: cannot link %s/msb", in->bin);
	}
	stage("linked-bin");
	for (size_t i = 0; i < 2; i++) {
		n = readlinkat(lfd, libs[i], have, sizeof(have) - 1);
		snprintf(want, sizeof(want), "../releases/current/lib/%s", libs[i]);
		if (n > 0 && (size_t)n == strlen(want) && !memcmp(have, want, (size_t)n))
			continue;
		r = set_link(lfd, libs[i], want);
		if (r < 0)
			return msb_err_sys(err, -r, "self update: cannot link %s/%s", in->lib,
					   libs[i]);
	}
	return 0;
}

/*
 * @name in releases/ becomes current, and what was current previous. Each
 * step is one rename; in between, current and previous may name the same
 * release, which is harmless.
 */
static int make_current(struct install *in, const char *name, struct msb_err **err)
{
	char cur[NAME_MAX + 1];
	int r;

	link_target(in->relfd, "current", cur, sizeof(cur));
	if (*cur && strcmp(cur, name) != 0) {
		r = set_link(in->relfd, "previous", cur);
		if (r < 0)
			return msb_err_sys(err, -r, "self update: cannot link %s/previous",
					   in->rel);
	}
	stage("previous");
	r = set_link(in->relfd, "current", name);
	if (r < 0)
		return msb_err_sys(err, -r, "self update: cannot link %s/current", in->rel);
	stage("switched");
	return point_links(in, err);
}

static int rollback(struct install *in)
{
	_cleanup_err_ struct msb_err *err = NULL;
	char cur[NAME_MAX + 1], prev[NAME_MAX + 1], from[128] = "", to[128] = "";
	_cleanup_free_ char *exe = NULL;

	link_target(in->relfd, "current", cur, sizeof(cur));
	link_target(in->relfd, "previous", prev, sizeof(prev));
	if (!*prev || !strcmp(prev, cur))
		return cli_error("self update --rollback: there is no previous version to go back "
				 "to (it is kept after an update)");
	if (asprintf(&exe, "%s/%s/bin/msb", in->rel, prev) < 0 ||
	    exe_version(exe, to, sizeof(to)) < 0)
		return cli_error("self update --rollback: the previous version (%s/%s) does not "
				 "run; not switching to it",
				 in->rel, prev);
	snprintf(from, sizeof(from), "%s", msb_release_version);
	/* One rename: current and previous trade places, so neither is ever lost. */
	if (renameat2(in->relfd, "current", in->relfd, "previous", RENAME_EXCHANGE) < 0 ||
	    fsync(in->relfd) < 0)
		return cli_error("self update --rollback: cannot switch %s/current: %s", in->rel,
				 strerror(errno));
	stage("switched");
	if (point_links(in, &err) < 0)
		return cli_fail(err);
	printf("msb rolled back: %s -> %s (again to undo)\n", from, to);
	return 0;
}

/*
 * The release's directory name: version and the first 12 digits of its
 * tarball's sha256 (the same version rebuilt is another release).
 */
static void release_name(const struct release *rel, char *out, size_t cap)
{
	snprintf(out, cap, "%s-%.12s", rel->version, rel->sha256);
}

/* Download, verify, unpack, check and switch to @rel. Return: 0, or -1 with @err. */
static int install_release(struct install *in, const char *url, const struct release *rel,
			   bool force, struct msb_err **err)
{
	char dl[] = ".dl-XXXXXX", new[] = ".new-XXXXXX", name[NAME_MAX + 1], got[DIGEST_LEN],
	     ver[128];
	_cleanup_close_ int tfd = -1, dfd = -1;
	_cleanup_free_ char *dlpath = NULL, *newpath = NULL, *exe = NULL;
	struct sink s = { .fd = -1, .max = rel->size, .progress = isatty(2), .what = rel->tarball };
	const char *tmpname;
	struct stat st;
	int r = -1;

	release_name(rel, name, sizeof(name));
	if (fstatat(in->relfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
	    !force) {
		/* Installed before (a rollback's other half): switch to it. */
		return make_current(in, name, err);
	}

	/* The tarball: beside where it will be unpacked, checked before use. */
	dlpath = path_join(in->rel, dl);
	if (!dlpath)
		return msb_err_sys(err, ENOMEM, "self update");
	tfd = mkostemp(dlpath, O_CLOEXEC);
	if (tfd < 0)
		return msb_err_sys(err, errno, "self update: cannot write in %s", in->rel);
	s.fd = tfd;
	if (sha256_init(&s.h) < 0) {
		msb_err_sys(err, ENOMEM, "self update");
		goto out;
	}
	r = fetch(url, rel->tarball, &s, err);
	sha256_final(&s.h, got);
	if (r < 0)
		goto out;
	r = -1;
	if (s.n != rel->size || strcmp(got + 7, rel->sha256) != 0) {
		msb_err_set(
			err, EINVAL,
			"update channel: %s does not match the signed manifest (%s, %llu bytes; "
			"the manifest says sha256:%s, %llu bytes); nothing changed",
			rel->tarball, got, (unsigned long long)s.n, rel->sha256,
			(unsigned long long)rel->size);
		goto out;
	}
	stage("downloaded");

	/* Unpacked under a temporary name, renamed into place when whole. */
	newpath = path_join(in->rel, new);
	if (!newpath || !mkdtemp(newpath)) {
		msb_err_sys(err, errno ? errno : ENOMEM, "self update: cannot write in %s",
			    in->rel);
		goto out;
	}
	dfd = open(newpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fchmod(dfd, 0755) < 0 || lseek(tfd, 0, SEEK_SET) < 0) {
		msb_err_sys(err, errno, "self update: %s", newpath);
		goto out;
	}
	if (unpack(tfd, dfd, err) < 0)
		goto out;
	for (int i = 0; i < 3; i++) {
		static const char *const need[] = { "bin/msb", "lib/vmlinux", "lib/initrd.cpio" };

		if (fstatat(dfd, need[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
			msb_err_set(err, EINVAL,
				    "update: the release has no %s (not an msb release)", need[i]);
			goto out;
		}
	}
	if (fsync_dir_at(dfd, "bin") < 0 || fsync_dir_at(dfd, "lib") < 0 || fsync(dfd) < 0) {
		msb_err_sys(err, errno, "self update: %s", newpath);
		goto out;
	}
	stage("unpacked");

	/* It runs here and is what the manifest says. */
	if (asprintf(&exe, "%s/bin/msb", newpath) < 0) {
		exe = NULL;
		msb_err_sys(err, ENOMEM, "self update");
		goto out;
	}
	if (exe_version(exe, ver, sizeof(ver)) < 0) {
		char missing[256];

		missing_libs(exe, missing, sizeof(missing));
		msb_err_set(err, EINVAL,
			    "update: msb %s does not run on this host (%s); nothing changed",
			    rel->version, missing);
		goto out;
	}
	if (strcmp(ver, rel->version) != 0) {
		msb_err_set(err, EINVAL,
			    "update: the new msb says it is %s, but the manifest says %s; nothing "
			    "changed",
			    ver, rel->version);
		goto out;
	}
	stage("checked");

	/* Into place: a reinstall (-f) of a release that is there exchanges the two. */
	tmpname = strrchr(newpath, '/') + 1; /* mkdtemp() filled in the Xs there */
	if (renameat2(in->relfd, tmpname, in->relfd, name, RENAME_NOREPLACE) < 0) {
		if (errno != EEXIST ||
		    renameat2(in->relfd, tmpname, in->relfd, name, RENAME_EXCHANGE) < 0) {
			msb_err_sys(err, errno, "self update: cannot place %s/%s", in->rel, name);
			goto out;
		}
		/* The old copy is at the temporary name now: the sweep below takes it. */
	}
	if (fsync(in->relfd) < 0) {
		msb_err_sys(err, errno, "self update: %s", in->rel);
		goto out;
	}
	stage("placed");
	r = make_current(in, name, err);
out:
	if (dlpath)
		unlink(dlpath);
	if (r < 0 && newpath)
		rm_rf(newpath);
	return r;
}

int self_update(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "rollback", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_err_ struct msb_err *err = NULL;
	_cleanup_free_ char *url = NULL;
	struct install in = { .relfd = -1, .lockfd = -1 };
	struct sink man = { .fd = -1, .max = MANIFEST_MAX }, sig = { .fd = -1, .max = SIG_LEN + 1 };
	struct release rel = { 0 };
	struct utsname u;
	char mname[128];
	bool force = false, back = false;
	int c, rc = EXIT_MSB, cmp;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+fh", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'R':
			back = true;
			break;
		case 'h':
			update_usage();
			return 0;
		default:
			return cli_bad_flag("self update", argv, lo);
		}
	}
	if (optind < argc)
		return cli_error("self update: unexpected argument \"%s\" (it takes only flags)",
				 argv[optind]);
	if (back && force)
		return cli_error("self update: --rollback and -f do not go together (pick one)");
	if (install_open(&in, &err) < 0)
		goto fail;
	sweep(in.relfd, in.rel, false);
	if (back) {
		rc = rollback(&in);
		install_free(&in);
		return rc;
	}

	if (uname(&u) < 0 || channel_url(&url, &err) < 0)
		goto fail;
	snprintf(mname, sizeof(mname), "latest-linux-%s.json", u.machine);
	if (fetch(url, mname, &man, &err) < 0)
		goto fail;
	snprintf(mname, sizeof(mname), "latest-linux-%s.json.sig", u.machine);
	if (fetch(url, mname, &sig, &err) < 0)
		goto fail;
	if (!verify_sig(man.mem ? man.mem : "", man.len, (const unsigned char *)sig.mem, sig.len)) {
		msb_err_set(&err, EPERM,
			    "update channel %s: the manifest's signature does not verify with "
			    "msb's release key (a damaged or forged release); nothing changed",
			    url);
		goto fail;
	}
	if (parse_manifest(man.mem, man.len, u.machine, &rel, &err) < 0)
		goto fail;
	cmp = version_cmp(rel.version, msb_release_version);
	if (cmp == 0 && !force) {
		printf("msb %s is up to date (-f to install it again)\n", msb_release_version);
		rc = 0;
		goto done;
	}
	if (cmp < 0 && !force) {
		msb_err_set(&err, EINVAL,
			    "self update: the channel's release %s is older than this msb %s "
			    "(-f installs it anyway; --rollback goes back to the version before)",
			    rel.version, msb_release_version);
		goto fail;
	}
	if (install_release(&in, url, &rel, force, &err) < 0)
		goto fail;
	stage("linked");
	sweep(in.relfd, in.rel, true);
	if (cmp == 0)
		printf("msb %s reinstalled (%s/current)\n", rel.version, in.rel);
	else
		printf("msb %s: %s -> %s (%s/current; 'msb self update --rollback' goes "
		       "back)\n",
		       cmp > 0 ? "updated" : "downgraded", msb_release_version, rel.version,
		       in.rel);
	rc = 0;
	goto done;
fail:
	rc = cli_fail(err);
done:
	free(man.mem);
	free(sig.mem);
	install_free(&in);
	return rc;
}

/* --- msb --version ----------------------------------------------------------- */

/* The first "@marker<text>" in the file @path, its text up to a space or NUL, into @out. */
static int scan_file(const char *path, const char *marker, char *out, size_t cap)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	const char *m, *p, *end;
	size_t n, ml = strlen(marker);
	int r = -1;

	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0)
		return -1;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return -1;
	end = m + st.st_size;
	p = memmem(m, (size_t)st.st_size, marker, ml);
	if (p) {
		p += ml;
		for (n = 0; p + n < end && n + 1 < cap && p[n] > ' ' && p[n] < 0x7f; n++)
			out[n] = p[n];
		out[n] = '\0';
		r = n ? 0 : -1;
	}
	munmap((void *)m, (size_t)st.st_size);
	return r;
}

int cli_version(void)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	char kv[64], av[64];

	printf("msb %s\ncommit: %s\n", msb_release_version, msb_release_commit);
	if (msb_lib_file("vmlinux", &kernel, NULL) == 0 &&
	    scan_file(kernel, "Linux version ", kv, sizeof(kv)) == 0)
		printf("kernel: Linux %s (%s)\n", kv, kernel);
	else
		printf("kernel: not found (%s)\n",
		       kernel ? kernel : "run 'make', or set MSB_LIB_DIR");
	if (msb_lib_file("initrd.cpio", &initrd, NULL) == 0 &&
	    scan_file(initrd, AGENT_IDENT, av, sizeof(av)) == 0)
		printf("agent:  agentd %s (%s)\n", av, initrd);
	else
		printf("agent:  not found (%s)\n",
		       initrd ? initrd : "run 'make', or set MSB_LIB_DIR");
	return 0;
}
