// SPDX-License-Identifier: Apache-2.0
/* A growable NULL-terminated vector of owned strings. */
#include "util/strv.h"

#include <stdlib.h>
#include <string.h>

int strv_push(struct strv *s, const char *str)
{
	char **nv = realloc(s->v, (s->n + 2) * sizeof(char *));

	if (!nv)
		return -1;
	s->v = nv;
	s->v[s->n] = strdup(str);
	if (!s->v[s->n])
		return -1;
	s->v[++s->n] = NULL;
	return 0;
}

int strv_push_all(struct strv *s, char *const *v)
{
	for (; v && *v; v++)
		if (strv_push(s, *v) < 0)
			return -1;
	return 0;
}

char **strv_steal(struct strv *s)
{
	char **v = s->v ? s->v : calloc(1, sizeof(char *));

	s->v = NULL;
	s->n = 0;
	return v;
}

void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}
