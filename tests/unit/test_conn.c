// SPDX-License-Identifier: Apache-2.0
/* Unit tests for conn: non-blocking reads within a budget and a cap, queued writes, epoll masks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/conn.h"

#define KIB ((size_t)1024)
#define MIB ((size_t)1 << 20)

/* --- helpers ---------------------------------------------------------- */

/* A pipe whose capacity is @size, so a test can park that much in the kernel. */
static void big_pipe(int p[2], size_t size)
{
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, (int)size) >= (int)size);
}

/* Byte @i of the test pattern: not periodic in any power of two, so misordering shows. */
static uint8_t pat(size_t i)
{
	return (uint8_t)((i * 7 + i / 251) & 0xff);
}

static void fill_pattern(uint8_t *p, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(from + i);
}

static void check_pattern(const uint8_t *p, size_t n, size_t from)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(from + i))
			fail_msg("byte %zu: got %u, expected %u", from + i, p[i], pat(from + i));
}

/* Writes all of @n pattern bytes to a blocking-enough fd (the pipe must have room). */
static void put_pattern(int fd, size_t n, size_t from)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	fill_pattern(p, n, from);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	free(p);
}

/* Is @fd registered in @ep? (EPOLL_CTL_MOD fails with ENOENT when it is not.) */
static bool registered(int ep, int fd, uint32_t ev)
{
	struct epoll_event e = { .events = ev };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) == 0)
		return true;
	assert_int_equal(errno, ENOENT);
	return false;
}

/* --- init ------------------------------------------------------------- */

static void test_init_makes_nonblocking_and_detects_sockets(void **state)
{
	struct conn s, p;
	int sv[2], pp[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	conn_init(&s, sv[0], 100, 200);
	conn_init(&p, pp[0], 100, 200);
	assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(pp[0], F_GETFL) & O_NONBLOCK);
	assert_true(s.sock);
	assert_false(p.sock);
	assert_int_equal(s.fd, sv[0]);
	assert_int_equal(s.tx_hwm, 100);
	assert_int_equal(s.rx_max, 200);
	assert_false(s.eof);
	assert_int_equal(s.error, 0);
	assert_int_equal(s.ev, 0);
	/* Nothing there: a read returns at once with nothing. */
	assert_int_equal(conn_fill(&s, 4096), 0);
	assert_int_equal(conn_fill(&p, 4096), 0);
	assert_false(s.eof);
	conn_close(&s);
	conn_close(&p);
	assert_int_equal(s.fd, -1);
	assert_int_equal(fcntl(sv[0], F_GETFD), -1); /* conn_close closed it */
	close(sv[1]);
	close(pp[1]);
}

/* --- conn_fill -------------------------------------------------------- */

static void test_fill_honours_small_budget(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	big_pipe(p, MIB);
	put_pattern(p[1], 100 * KIB, 0);
	conn_init(&c, p[0], MIB, 4 * MIB);
	assert_int_equal(conn_fill(&c, 1000), 1000);
	assert_int_equal(buf_size(&c.rx), 1000);
	assert_int_equal(conn_fill(&c, 1), 1);
	assert_int_equal(buf_size(&c.rx), 1001);
	check_pattern(buf_head(&c.rx), 1001, 0);
	conn_close(&c);
	close(p[1]);
}

static void test_fill_honours_budget_across_chunks(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	/* More than one 64 KiB read is needed: the budget still ends the call exactly. */
	big_pipe(p, MIB);
	put_pattern(p[1], 600 * KIB, 0);
	conn_init(&c, p[0], MIB, 4 * MIB);
	assert_int_equal(conn_fill(&c, 150 * KIB + 7), 150 * KIB + 7);
	assert_int_equal(buf_size(&c.rx), 150 * KIB + 7);
	assert_int_equal(conn_fill(&c, 300 * KIB), 300 * KIB);
	/* What is left is less than the budget: all of it, and no error for the EAGAIN after. */
	assert_int_equal(conn_fill(&c, MIB), 150 * KIB - 7);
	assert_int_equal(conn_fill(&c, MIB), 0);
	assert_int_equal(buf_size(&c.rx), 600 * KIB);
	check_pattern(buf_head(&c.rx), 600 * KIB, 0);
	assert_false(c.eof);
	assert_int_equal(c.error, 0);
	conn_close(&c);
	close(p[1]);
}

static void test_fill_honours_rx_max(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	big_pipe(p, MIB);
	put_pattern(p[1], 5000, 0);
	conn_init(&c, p[0], MIB, 1000);
	assert_int_equal(conn_fill(&c, MIB), 1000);
	assert_int_equal(buf_size(&c.rx), 1000);
	assert_false(conn_rx_room(&c));
	/* Full: nothing more is read, and that is not an error. */
	assert_int_equal(conn_fill(&c, MIB), 0);
	assert_int_equal(buf_size(&c.rx), 1000);
	/* Room again after the owner consumes. */
	conn_consume(&c, 300);
	assert_true(conn_rx_room(&c));
	assert_int_equal(conn_fill(&c, MIB), 300);
	assert_int_equal(buf_size(&c.rx), 1000);
	check_pattern(buf_head(&c.rx), 1000, 300);
	conn_consume(&c, 1000);
	assert_int_equal(conn_fill(&c, MIB), 1000);
	conn_consume(&c, 1000);
	assert_int_equal(conn_fill(&c, MIB), 1000);
	check_pattern(buf_head(&c.rx), 1000, 2300);
	/* The budget and the cap together: the smaller one wins. */
	conn_consume(&c, 1000);
	assert_int_equal(conn_fill(&c, 10), 10);
	conn_close(&c);
	close(p[1]);
}

static void test_fill_sees_eof_after_the_data(void **state)
{
	struct conn c;
	int sv[2];
	ssize_t n;
	size_t got = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&c, sv[0], MIB, MIB);
	assert_int_equal(write(sv[1], "hello", 5), 5);
	close(sv[1]);
	/* The data first; EOF is reported (eof set, 0 returned) once nothing is left. */
	for (int i = 0; i < 3 && !c.eof; i++) {
		n = conn_fill(&c, MIB);
		assert_true(n >= 0);
		got += (size_t)n;
	}
	assert_true(c.eof);
	assert_int_equal(got, 5);
	assert_memory_equal(buf_head(&c.rx), "hello", 5);
	assert_int_equal(c.error, 0);
	/* After EOF: no more reading, no EPOLLIN wanted, and data still there to consume. */
	assert_false(conn_rx_room(&c));
	assert_int_equal(conn_fill(&c, MIB), 0);
	assert_int_equal(conn_events(&c, true) & EPOLLIN, 0);
	assert_int_equal(buf_size(&c.rx), 5);
	conn_close(&c);
}

static void test_fill_eof_on_empty_pipe(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[1]);
	conn_init(&c, p[0], MIB, MIB);
	assert_int_equal(conn_fill(&c, MIB), 0);
	assert_true(c.eof);
	assert_int_equal(buf_size(&c.rx), 0);
	conn_close(&c);
}

static void test_fill_zero_budget_reads_nothing(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	conn_init(&c, p[0], MIB, MIB);
	assert_int_equal(conn_fill(&c, 0), 0);
	assert_int_equal(buf_size(&c.rx), 0);
	assert_int_equal(conn_fill(&c, 3), 3);
	conn_close(&c);
	close(p[1]);
}

static void test_fill_error_is_sticky(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	/* Reading the write end of a pipe fails with EBADF: a fatal error, kept. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	conn_init(&c, p[1], MIB, MIB);
	assert_int_equal(conn_fill(&c, MIB), -EBADF);
	assert_int_equal(c.error, -EBADF);
	assert_int_equal(conn_fill(&c, MIB), -EBADF);
	assert_int_equal(conn_flush(&c), -EBADF);
	assert_int_equal(conn_events(&c, true), 0);
	conn_close(&c);
	close(p[0]);
}

/* --- conn_flush ------------------------------------------------------- */

static void test_flush_keeps_what_the_kernel_refuses(void **state)
{
	const size_t total = 3 * MIB;
	struct conn c;
	int sv[2];
	uint8_t *src, *dst;
	size_t got = 0;
	int rounds = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&c, sv[0], MIB, MIB);
	src = malloc(total);
	dst = malloc(total);
	assert_non_null(src);
	assert_non_null(dst);
	fill_pattern(src, total, 0);
	assert_int_equal(buf_append(&c.tx, src, total), 0);
	assert_true(conn_tx_full(&c));
	/* The socket cannot take 3 MiB: EAGAIN is not an error, the rest stays queued. */
	assert_int_equal(conn_flush(&c), 0);
	assert_int_equal(c.error, 0);
	assert_true(buf_size(&c.tx) > 0);
	assert_true(buf_size(&c.tx) < total);
	assert_true(conn_events(&c, false) & EPOLLOUT);
	/* The peer reads, we flush again: every byte arrives once and in order. */
	while (got < total) {
		ssize_t n = read(sv[1], dst + got, total - got);

		assert_true(n > 0);
		got += (size_t)n;
		assert_int_equal(conn_flush(&c), 0);
		assert_true(++rounds < 100000);
	}
	assert_int_equal(buf_size(&c.tx), 0);
	assert_memory_equal(src, dst, total);
	assert_false(conn_tx_full(&c));
	assert_int_equal(conn_events(&c, false), 0);
	/* A queue that grew past 1 MiB gave its memory back once drained. */
	assert_int_equal(c.tx.cap, 0);
	assert_null(c.tx.data);
	free(src);
	free(dst);
	conn_close(&c);
	close(sv[1]);
}

static void test_flush_small_queue_keeps_its_memory(void **state)
{
	struct conn c;
	int sv[2];
	char b[64];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&c, sv[0], MIB, MIB);
	assert_int_equal(buf_append(&c.tx, "ping", 4), 0);
	assert_int_equal(conn_flush(&c), 0);
	assert_int_equal(buf_size(&c.tx), 0);
	assert_true(c.tx.cap > 0); /* small: kept for the next frame */
	assert_int_equal(read(sv[1], b, sizeof(b)), 4);
	assert_memory_equal(b, "ping", 4);
	conn_close(&c);
	close(sv[1]);
}

static void test_flush_to_closed_socket_is_epipe_without_signal(void **state)
{
	struct timespec zero = { 0 };
	sigset_t pipe_set, old_mask, pending;
	struct conn c;
	int sv[2];

	(void)state;
	/*
	 * A socket is written with MSG_NOSIGNAL: no SIGPIPE, whatever the
	 * caller's disposition. SIGPIPE is blocked here so that one raised
	 * shows up as pending instead of killing the test.
	 */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old_mask);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	conn_init(&c, sv[0], MIB, MIB);
	assert_int_equal(buf_append(&c.tx, "lost", 4), 0);
	assert_int_equal(conn_flush(&c), -EPIPE);
	assert_int_equal(c.error, -EPIPE);
	assert_int_equal(conn_flush(&c), -EPIPE);
	assert_int_equal(conn_events(&c, true), 0);
	sigpending(&pending);
	if (sigismember(&pending, SIGPIPE))
		sigtimedwait(&pipe_set, NULL, &zero);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	assert_false(sigismember(&pending, SIGPIPE));
	conn_close(&c);
}

static void test_flush_to_closed_pipe_is_epipe(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	struct conn c;
	int p[2];

	(void)state;
	/* A pipe is written with write(): the caller ignores SIGPIPE, the error comes back. */
	sigaction(SIGPIPE, &ign, &old);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	conn_init(&c, p[1], MIB, MIB);
	assert_int_equal(buf_append(&c.tx, "lost", 4), 0);
	assert_int_equal(conn_flush(&c), -EPIPE);
	assert_int_equal(c.error, -EPIPE);
	sigaction(SIGPIPE, &old, NULL);
	conn_close(&c);
}

static void test_tx_full_at_the_high_water_mark(void **state)
{
	struct conn c;
	int sv[2];
	uint8_t b[100] = { 0 };

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&c, sv[0], 100, MIB);
	assert_false(conn_tx_full(&c));
	assert_int_equal(buf_append(&c.tx, b, 99), 0);
	assert_false(conn_tx_full(&c));
	assert_int_equal(buf_append(&c.tx, b, 1), 0);
	assert_true(conn_tx_full(&c));
	buf_consume(&c.tx, 1);
	assert_false(conn_tx_full(&c));
	conn_close(&c);
	close(sv[1]);
}

/* --- conn_consume ----------------------------------------------------- */

static void test_consume_shrinks_a_big_rx_once_empty(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	big_pipe(p, MIB);
	conn_init(&c, p[0], MIB, 4 * MIB);
	/* 2 MiB held: the buffer grew beyond 1 MiB. */
	put_pattern(p[1], MIB, 0);
	assert_int_equal(conn_fill(&c, 4 * MIB), (ssize_t)MIB);
	put_pattern(p[1], MIB, MIB);
	assert_int_equal(conn_fill(&c, 4 * MIB), (ssize_t)MIB);
	assert_true(c.rx.cap > MIB);
	check_pattern(buf_head(&c.rx), 2 * MIB, 0);
	/* Partly consumed: kept. */
	conn_consume(&c, MIB);
	assert_true(c.rx.cap > MIB);
	check_pattern(buf_head(&c.rx), MIB, MIB);
	/* Empty: given back. */
	conn_consume(&c, MIB);
	assert_int_equal(c.rx.cap, 0);
	assert_null(c.rx.data);
	/* And usable again. */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(conn_fill(&c, 10), 1);
	assert_int_equal(buf_head(&c.rx)[0], 'x');
	conn_close(&c);
	close(p[1]);
}

/* --- conn_events / conn_watch ----------------------------------------- */

static void test_events_masks(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	conn_init(&c, p[0], MIB, 4);
	assert_int_equal(conn_events(&c, true), EPOLLIN);
	assert_int_equal(conn_events(&c, false), 0);
	/* Queued output: EPOLLOUT, with or without input wanted. */
	assert_int_equal(buf_append(&c.tx, "x", 1), 0);
	assert_int_equal(conn_events(&c, true), EPOLLIN | EPOLLOUT);
	assert_int_equal(conn_events(&c, false), EPOLLOUT);
	buf_clear(&c.tx);
	/* rx at its cap: no EPOLLIN even when input is wanted. */
	assert_int_equal(write(p[1], "abcdef", 6), 6);
	assert_int_equal(conn_fill(&c, 100), 4);
	assert_int_equal(conn_events(&c, true), 0);
	conn_consume(&c, 1);
	assert_int_equal(conn_events(&c, true), EPOLLIN);
	/* EOF: no EPOLLIN. */
	c.eof = true;
	assert_int_equal(conn_events(&c, true), 0);
	conn_close(&c);
	close(p[1]);
}

static void test_watch_follows_the_mask(void **state)
{
	struct epoll_event ev;
	struct conn c;
	int sv[2], ep;
	char b[8];

	(void)state;
	ep = epoll_create1(EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&c, sv[0], MIB, MIB);

	/* Nothing wanted: not registered at all. */
	assert_int_equal(conn_watch(&c, ep, 42, false), 0);
	assert_int_equal(c.ev, 0);
	assert_false(registered(ep, sv[0], EPOLLIN));

	/* Input wanted: added with EPOLLIN and the caller's payload. */
	assert_int_equal(conn_watch(&c, ep, 42, true), 0);
	assert_int_equal(c.ev, EPOLLIN);
	assert_int_equal(write(sv[1], "a", 1), 1);
	assert_int_equal(epoll_wait(ep, &ev, 1, 1000), 1);
	assert_int_equal(ev.data.u64, 42);
	assert_true(ev.events & EPOLLIN);
	/* Same mask again: no change (no syscall needed, no error). */
	assert_int_equal(conn_watch(&c, ep, 42, true), 0);
	assert_int_equal(c.ev, EPOLLIN);

	/* Output queued, input not wanted: modified to EPOLLOUT only. */
	assert_int_equal(buf_append(&c.tx, "q", 1), 0);
	assert_int_equal(conn_watch(&c, ep, 43, false), 0);
	assert_int_equal(c.ev, EPOLLOUT);
	assert_int_equal(epoll_wait(ep, &ev, 1, 1000), 1);
	assert_int_equal(ev.data.u64, 43);
	assert_int_equal(ev.events & (EPOLLIN | EPOLLOUT), EPOLLOUT);

	/* Drained and no input wanted: removed. */
	assert_int_equal(conn_flush(&c), 0);
	assert_int_equal(conn_watch(&c, ep, 43, false), 0);
	assert_int_equal(c.ev, 0);
	assert_false(registered(ep, sv[0], EPOLLIN));
	assert_int_equal(epoll_wait(ep, &ev, 1, 0), 0);
	assert_int_equal(read(sv[1], b, sizeof(b)), 1);

	/* Registered again from scratch. */
	assert_int_equal(conn_watch(&c, ep, 44, true), 0);
	assert_int_equal(c.ev, EPOLLIN);
	assert_true(registered(ep, sv[0], EPOLLIN));

	/* A closed connection is left alone. */
	conn_close(&c);
	assert_int_equal(conn_watch(&c, ep, 44, true), 0);
	assert_int_equal(c.ev, 0);
	close(sv[1]);
	close(ep);
}

static void test_watch_reports_epoll_errors(void **state)
{
	struct conn c;
	int p[2];

	(void)state;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	conn_init(&c, p[0], MIB, MIB);
	/* Not an epoll descriptor: the error comes back and the state is unchanged. */
	assert_int_equal(conn_watch(&c, p[1], 1, true), -EINVAL);
	assert_int_equal(c.ev, 0);
	conn_close(&c);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_makes_nonblocking_and_detects_sockets),
		cmocka_unit_test(test_fill_honours_small_budget),
		cmocka_unit_test(test_fill_honours_budget_across_chunks),
		cmocka_unit_test(test_fill_honours_rx_max),
		cmocka_unit_test(test_fill_sees_eof_after_the_data),
		cmocka_unit_test(test_fill_eof_on_empty_pipe),
		cmocka_unit_test(test_fill_zero_budget_reads_nothing),
		cmocka_unit_test(test_fill_error_is_sticky),
		cmocka_unit_test(test_flush_keeps_what_the_kernel_refuses),
		cmocka_unit_test(test_flush_small_queue_keeps_its_memory),
		cmocka_unit_test(test_flush_to_closed_socket_is_epipe_without_signal),
		cmocka_unit_test(test_flush_to_closed_pipe_is_epipe),
		cmocka_unit_test(test_tx_full_at_the_high_water_mark),
		cmocka_unit_test(test_consume_shrinks_a_big_rx_once_empty),
		cmocka_unit_test(test_events_masks),
		cmocka_unit_test(test_watch_follows_the_mask),
		cmocka_unit_test(test_watch_reports_epoll_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
