// SPDX-License-Identifier: Apache-2.0
/* Pull progress for people: redrawn bars with rates on a tty, plain event lines in logs. */
#define _GNU_SOURCE
#include "image/progress.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"

#define REDRAW_MS 100
#define BAR	  24

struct lp {
	char id[20];
	const char *state;
	uint64_t done, total;
	uint64_t resumed;
	uint64_t t0;
	bool fetched;
};

struct progress {
	FILE *f;
	bool tty;
	char ref[256];
	char digest[80];
	struct lp *l;
	size_t n;
	int drawn;
	uint64_t start, last_draw;
	uint64_t fetched_bytes;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct progress *progress_new(FILE *f)
{
	struct progress *p = calloc(1, sizeof(*p));
	const char *term;

	if (!p)
		return NULL;
	p->f = f;
	term = getenv("TERM");
	p->tty = isatty(fileno(f)) && term && strcmp(term, "dumb") != 0;
	p->start = now_ms();
	return p;
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	free(p->l);
	free(p);
}

static void draw(struct progress *p, bool force)
{
	uint64_t t = now_ms();

	if (!force && t - p->last_draw < REDRAW_MS)
		return;
	p->last_draw = t;
	if (p->drawn)
		fprintf(p->f, "\033[%dA", p->drawn);
	for (size_t i = 0; i < p->n; i++) {
		struct lp *l = &p->l[i];
		char done[32], total[32], rate[48] = "";
		int fill = l->total ? (int)((l->done * BAR) / l->total) : 0;
		char bar[BAR + 1];

		for (int k = 0; k < BAR; k++)
			bar[k] = k < fill ? '=' : (k == fill ? '>' : ' ');
		bar[BAR] = '\0';
		format_size(l->done, done, sizeof(done));
		format_size(l->total, total, sizeof(total));
		if (!strcmp(l->state, "Downloading") && t > l->t0) {
			char r[32];

			format_size((l->done - l->resumed) * 1000 / (t - l->t0 + 1), r, sizeof(r));
			snprintf(rate, sizeof(rate), " %s/s", r);
		}
		if (!strcmp(l->state, "Downloading"))
			fprintf(p->f, "\r\033[2K%s: %-12s [%s] %s / %s%s\n", l->id, l->state, bar,
				done, total, rate);
		else
			fprintf(p->f, "\r\033[2K%s: %s\n", l->id, l->state ? l->state : "Waiting");
	}
	p->drawn = (int)p->n;
	fflush(p->f);
}

static void line(struct progress *p, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void line(struct progress *p, size_t i, const char *fmt, ...)
{
	va_list ap;

	fprintf(p->f, "%s: layer %zu/%zu %s: ", p->ref, i + 1, p->n, p->l[i].id);
	va_start(ap, fmt);
	vfprintf(p->f, fmt, ap);
	va_end(ap);
	fputc('\n', p->f);
	fflush(p->f);
}

void progress_event(const struct pull_event *ev, void *ctx)
{
	struct progress *p = ctx;
	struct lp *l = NULL;
	char a[32], b[32];

	if (ev->type == PEV_RESOLVED) {
		snprintf(p->ref, sizeof(p->ref), "%s", ev->ref);
		snprintf(p->digest, sizeof(p->digest), "%s", ev->manifest_digest);
		free(p->l);
		p->n = ev->nlayers;
		p->l = calloc(p->n ? p->n : 1, sizeof(*p->l));
		if (!p->l) {
			p->n = 0;
			return;
		}
		for (size_t i = 0; i < p->n; i++)
			p->l[i].state = "Waiting";
		if (!p->tty)
			fprintf(p->f, "%s: resolved to %s (%zu layer%s)\n", p->ref, p->digest, p->n,
				p->n == 1 ? "" : "s");
		else
			fprintf(p->f, "%s: pulling from %s\n", p->ref, p->digest);
		return;
	}
	if (ev->type == PEV_DONE) {
		char size[32];

		if (p->tty)
			draw(p, true);
		format_size(p->fetched_bytes, size, sizeof(size));
		fprintf(p->f, "%s: pulled %s (%zu layers, %s downloaded in %.1fs)\n", p->ref,
			p->digest, p->n, size, (double)(now_ms() - p->start) / 1000.0);
		fflush(p->f);
		return;
	}
	if (ev->layer >= p->n)
		return;
	l = &p->l[ev->layer];
	if (!l->id[0])
		snprintf(l->id, sizeof(l->id), "%.12s", ev->digest ? ev->digest + 7 : "?");
	switch (ev->type) {
	case PEV_CACHED:
		l->state = "Already present";
		if (!p->tty)
			line(p, ev->layer, "already present");
		break;
	case PEV_WAITING:
		l->state = "Waiting for another pull";
		if (!p->tty)
			line(p, ev->layer, "waiting for another msb pulling it");
		break;
	case PEV_DOWNLOAD:
		l->state = "Downloading";
		l->total = ev->total;
		l->done = l->resumed = ev->done;
		l->t0 = now_ms();
		l->fetched = true;
		format_size(ev->total, a, sizeof(a));
		format_size(ev->done, b, sizeof(b));
		if (!p->tty && ev->done)
			line(p, ev->layer, "resuming at %s of %s", b, a);
		else if (!p->tty)
			line(p, ev->layer, "downloading %s", a);
		break;
	case PEV_PROGRESS:
		l->done = ev->done;
		break;
	case PEV_VERIFIED:
		l->state = "Verified, converting";
		l->done = ev->done;
		p->fetched_bytes += ev->done - l->resumed;
		if (!p->tty)
			line(p, ev->layer, "verified");
		break;
	case PEV_CONVERTED:
		l->state = "Done";
		format_size(ev->total, a, sizeof(a));
		if (!p->tty)
			line(p, ev->layer, "converted (%s squashfs)", a);
		break;
	default:
		break;
	}
	if (p->tty)
		draw(p, ev->type != PEV_PROGRESS);
}
