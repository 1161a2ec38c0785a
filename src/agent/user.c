// SPDX-License-Identifier: Apache-2.0
/* User and group lookup that reads the files itself, so it works in any image. */
#define _GNU_SOURCE
#include "agent/user.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Parses a decimal id; rejects signs, blanks, overflow and the (uid_t)-1 sentinel. */
static bool parse_id(const char *s, unsigned int *out)
{
	unsigned long v;
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= UINT_MAX)
		return false;
	*out = (unsigned int)v;
	return true;
}

/* Splits one line of a colon-separated database in place. Return: field count. */
static int split_fields(char *line, char **f, int max)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == ':') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

/*
 * Reads the next line of a colon-separated database, whatever its length
 * (a fixed buffer would split a long line into a forged second entry).
 * Return: the line (owned by @buf), or NULL at the end.
 */
static char *next_line(FILE *fp, char **buf, size_t *cap)
{
	for (;;) {
		ssize_t n = getline(buf, cap, fp);

		if (n < 0)
			return NULL;
		if (n > 65536) /* no sane entry is this long: skip it */
			continue;
		return *buf;
	}
}

/* Finds a passwd entry by name (@name) or by uid (@name NULL). */
static bool passwd_find(FILE *fp, const char *name, uid_t uid, struct user_info *u, char *uname,
			size_t uname_len)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!fp)
		return false;
	rewind(fp);
	while (!found && next_line(fp, &line, &cap)) {
		char *f[7];
		unsigned int id, gid;

		if (split_fields(line, f, 7) < 7)
			continue;
		if (!parse_id(f[2], &id) || !parse_id(f[3], &gid))
			continue;
		if (name ? strcmp(f[0], name) != 0 : id != uid)
			continue;
		u->uid = id;
		u->gid = gid;
		snprintf(u->home, sizeof(u->home), "%s", *f[5] ? f[5] : "/");
		snprintf(uname, uname_len, "%s", f[0]);
		found = true;
	}
	free(line);
	return found;
}

static bool group_find(FILE *fp, const char *name, gid_t *gid)
{
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!fp)
		return false;
	rewind(fp);
	while (!found && next_line(fp, &line, &cap)) {
		char *f[4];
		unsigned int id;

		if (split_fields(line, f, 4) < 3 || !parse_id(f[2], &id))
			continue;
		if (strcmp(f[0], name) == 0) {
			*gid = id;
			found = true;
		}
	}
	free(line);
	return found;
}

/* Collects the groups that list @uname as a member, besides the primary one. */
static void group_members(FILE *fp, const char *uname, struct user_info *u)
{
	char *line = NULL;
	size_t cap = 0;

	u->ngroups = 0;
	if (!fp || !*uname)
		return;
	rewind(fp);
	while (u->ngroups < USER_MAX_GROUPS && next_line(fp, &line, &cap)) {
		char *f[4], *tok, *save = NULL;
		unsigned int id;

		if (split_fields(line, f, 4) < 4 || !parse_id(f[2], &id))
			continue;
		for (tok = strtok_r(f[3], ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (strcmp(tok, uname) == 0 && id != u->gid) {
				u->groups[u->ngroups++] = id;
				break;
			}
		}
	}
	free(line);
}

int user_resolve(const char *spec, FILE *passwd, FILE *group, struct user_info *out, char *why,
		 size_t why_len)
{
	char buf[256], uname[256] = "";
	char *upart, *gpart;
	unsigned int id;

	memset(out, 0, sizeof(*out));
	snprintf(out->home, sizeof(out->home), "/");
	if (!spec || !*spec)
		spec = "0";
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(why, why_len, "user spec too long");
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", spec);
	upart = buf;
	gpart = strchr(buf, ':');
	if (gpart)
		*gpart++ = '\0';
	if (!*upart || (gpart && !*gpart)) {
		snprintf(why, why_len, "invalid user \"%s\" (use NAME, UID, or UID:GID)", spec);
		return -EINVAL;
	}

	if (parse_id(upart, &id)) {
		/* A numeric uid needs no passwd entry; use one if present. */
		if (!passwd_find(passwd, NULL, id, out, uname, sizeof(uname))) {
			out->uid = id;
			out->gid = 0;
		}
	} else if (!passwd_find(passwd, upart, 0, out, uname, sizeof(uname))) {
		snprintf(why, why_len, "unable to find user %s: no matching entries in passwd file",
			 upart);
		return -ENOENT;
	}

	/* As with docker: an explicit group replaces the supplementary groups too. */
	if (!gpart)
		group_members(group, uname, out);
	if (gpart) {
		gid_t g;

		if (parse_id(gpart, &id)) {
			out->gid = id;
		} else if (group_find(group, gpart, &g)) {
			out->gid = g;
		} else {
			snprintf(why, why_len,
				 "unable to find group %s: no matching entries in group file",
				 gpart);
			return -ENOENT;
		}
	}
	return 0;
}
