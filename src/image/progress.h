/* SPDX-License-Identifier: Apache-2.0 */
/* Renders pull progress: bars on a terminal, one line per event otherwise. */
#ifndef MSB_IMAGE_PROGRESS_H
#define MSB_IMAGE_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "image/pull.h"

struct progress;

/* progress_new() - render to @f (a terminal gets bars). Return: NULL on ENOMEM. */
struct progress *progress_new(FILE *f);
/* progress_event() - a pull_progress_fn; @ctx is the struct progress. */
void progress_event(const struct pull_event *ev, void *ctx);
void progress_free(struct progress *p);

#endif
