// SPDX-License-Identifier: Apache-2.0
/*
 * A hostile guest, for tests only: built into a separate agentd
 * (-DMSB_AGENT_HOSTILE, build/tests/hostile/initrd.cpio), never into the
 * one msb ships. An exec of "__hostile MODE" makes agentd itself attack the
 * host on its port the way root in a compromised guest could, so the tests
 * can check that the supervisor and CLI hold: bounded memory, capped logs,
 * a working stop, a one-line reason.
 */
#define _GNU_SOURCE
#include "agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/buf.h"
#include "util/le.h"

#ifdef MSB_AGENT_HOSTILE

bool hostile_ignore_quiesce;

/* Writes all of @p, waiting for room; a host that is gone ends the attack. */
static int put(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };

			poll(&pf, 1, 1000);
			continue;
		}
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int frame(int fd, uint16_t type, uint32_t sid, const void *payload, uint32_t len)
{
	uint8_t hdr[PROTO_HDR_SIZE];

	put_le32(hdr, len);
	put_le32(hdr + 4, sid);
	put_le16(hdr + 8, type);
	put_le16(hdr + 10, 0);
	if (put(fd, hdr, sizeof(hdr)) < 0)
		return -1;
	return len ? put(fd, payload, len) : 0;
}

static uint64_t secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

void hostile_run(int port, uint32_t sid, char **argv)
{
	static uint8_t big[PROTO_DATA_CHUNK];
	const char *mode = argv[1] ? argv[1] : "";
	uint8_t v4[4];

	alog("hostile: %s", mode);
	memset(big, 'x', sizeof(big));
	put_le32(v4, 1234);
	frame(port, PROTO_STARTED, sid, v4, 4);
	if (!strcmp(mode, "flood")) {
		/* Output far beyond the window, never waiting for an ACK. */
		for (;;)
			if (frame(port, PROTO_STDOUT, sid, big, sizeof(big)) < 0)
				break;
	} else if (!strcmp(mode, "flood-tiny")) {
		for (;;)
			if (frame(port, PROTO_STDOUT, sid, "x", 1) < 0)
				break;
	} else if (!strcmp(mode, "noread")) {
		/* Some output, then the port is never read or written again. */
		frame(port, PROTO_STDOUT, sid, "stalled\n", 8);
		for (;;)
			pause();
	} else if (!strcmp(mode, "ready-spam")) {
		/* Repeated READY and ERROR for a few seconds, then an honest end. */
		uint8_t rd[20] = { 0 };
		uint8_t err[4 + 32];
		uint64_t until = secs() + 3;

		put_le32(rd, PROTO_VERSION);
		put_le32(err, 28);
		memcpy(err + 4, "the guest complains, again..", 28);
		while (secs() < until) {
			frame(port, PROTO_READY, 0, rd, sizeof(rd));
			frame(port, PROTO_ERROR, 0, err, 32);
		}
		frame(port, PROTO_STDOUT, sid, "survived\n", 9);
		put_le32(rd, 0);
		put_le32(rd + 4, 0);
		frame(port, PROTO_EXITED, sid, rd, 8);
		return;
	} else if (!strcmp(mode, "malformed")) {
		frame(port, 200, sid, "?", 1);
	} else if (!strcmp(mode, "oversized")) {
		uint8_t hdr[PROTO_HDR_SIZE];

		put_le32(hdr, 0x7fffffffu);
		put_le32(hdr + 4, sid);
		put_le16(hdr + 8, PROTO_STDOUT);
		put_le16(hdr + 10, 0);
		put(port, hdr, sizeof(hdr));
	} else if (!strcmp(mode, "host-frame")) {
		frame(port, PROTO_SIGNAL, sid, v4, 4);
	} else if (!strcmp(mode, "started-twice")) {
		frame(port, PROTO_STARTED, sid, v4, 4);
	} else if (!strcmp(mode, "ack-unsent")) {
		frame(port, PROTO_ACK, sid, v4, 4);
	} else if (!strcmp(mode, "quiesced")) {
		frame(port, PROTO_QUIESCED, 0, NULL, 0);
	} else if (!strcmp(mode, "no-quiesce")) {
		/* The session ends normally; the next snapshot waits for an answer that never
		 * comes. */
		struct buf b = { 0 };
		struct proto_exited x = { 0 };

		hostile_ignore_quiesce = true;
		if (proto_exited_encode(&b, sid, &x) == 0)
			put(port, buf_head(&b), buf_size(&b));
		buf_free(&b);
		return;
	} else if (!strcmp(mode, "ignore-signals")) {
		/* Alive, serving, but this session never ends: the host must give up on it. */
		return;
	}
	/* The host should have ended us by now; wait for it. */
	for (;;)
		pause();
}

#endif
