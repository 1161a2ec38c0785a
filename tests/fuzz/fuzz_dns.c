// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for DNS: the guest's queries, msb's replies to them, TCP
 * framing, and the checking and filtering of upstream answers.
 *
 * Input: a mode byte, then the bytes. Mode & 3:
 *   0  a query from the guest (also read as a DNS-over-TCP stream);
 *   1  an upstream answer, checked against the question it carries itself
 *      (so that mutations get past the "is this our answer" checks);
 *   2  a 2-byte big-endian length L, a query of L bytes, then an answer.
 * (mode >> 2) & 3 picks the caller's drop(): none, rebind protection,
 * every address whose last byte is odd, every address.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/addr.h"
#include "net/dns.h"

#define MAX_PINS (2 * DNS_MAX_RECORDS)

struct pin {
	char name[DNS_MAX_NAME_TEXT + 1];
	struct ipaddr ip;
	uint32_t ttl;
};

struct pins {
	size_t n;
	struct pin p[MAX_PINS];
};

static struct pins first, second;

static unsigned int be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

/* A name as dns.h promises it: lowercase host-name labels joined by single dots. */
static void check_name(const char *s)
{
	size_t len = strnlen(s, DNS_MAX_NAME_TEXT + 1), label = 0;

	CHECK(len <= DNS_MAX_NAME_TEXT);
	check_printable(s);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			CHECK(label > 0 && i + 1 < len);
			label = 0;
			continue;
		}
		CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
		CHECK(++label <= DNS_MAX_LABEL);
	}
}

static void record_pin(const char *name, const struct ipaddr *ip, uint32_t ttl, void *ctx)
{
	struct pins *ps = ctx;
	struct pin *p;

	CHECK(ps->n < MAX_PINS);
	check_name(name);
	CHECK(ttl <= 0x7fffffffu);
	p = &ps->p[ps->n++];
	strcpy(p->name, name);
	p->ip = *ip;
	p->ttl = ttl;
}

static bool drop_rebind(const struct ipaddr *ip, void *ctx)
{
	(void)ctx;
	return (ip_groups(ip) & (IPG_PRIVATE | IPG_LOOPBACK | IPG_LINK_LOCAL)) != 0;
}

static bool drop_odd(const struct ipaddr *ip, void *ctx)
{
	(void)ctx;
	return ip->b[15] & 1;
}

static bool drop_all(const struct ipaddr *ip, void *ctx)
{
	(void)ip;
	(void)ctx;
	return true;
}

static bool (*const drops[4])(const struct ipaddr *, void *) = {
	NULL,
	drop_rebind,
	drop_odd,
	drop_all,
};

/*
 * Filters @msg (@n bytes) as the answer to @q. What comes out must be an
 * answer to @q again that a second pass, dropping nothing, leaves exactly as
 * it is and pins exactly the same. Return: what the first pass returned.
 */
static int check_filter(const uint8_t *msg, size_t n, const struct dns_question *q,
			unsigned int dropmode)
{
	uint8_t *a = malloc(n ? n : 1), *b;
	size_t len = SIZE_MAX, len2 = SIZE_MAX;
	int rc;

	if (!a)
		return -ENOMEM;
	if (n)
		memcpy(a, msg, n);
	first.n = 0;
	rc = dns_filter_response(a, n, q, drops[dropmode], record_pin, &first, &len);
	if (rc < 0) {
		CHECK(rc == -EBADMSG);
		CHECK(first.n == 0 && len == SIZE_MAX);
		CHECK(!n || !memcmp(a, msg, n)); /* refused answers are left alone */
		free(a);
		return rc;
	}
	CHECK(rc == 0 || rc == 1);
	CHECK(len >= DNS_HDR_SIZE && len <= n);
	/* The header but ANCOUNT, and the question, are the upstream's. */
	CHECK(!memcmp(a, msg, 6) && !memcmp(a + 8, msg + 8, 4));
	CHECK(be16(a + 6) <= be16(msg + 6));
	if (len == n)
		CHECK(!memcmp(a, msg, n));
	else
		CHECK(be16(a + 6) < be16(msg + 6));
	if (rc == 1)
		CHECK(first.n == 0 && drops[dropmode]);
	if (first.n)
		CHECK(!strcmp(first.p[0].name, q->name));

	b = malloc(len);
	if (!b) {
		free(a);
		return rc;
	}
	memcpy(b, a, len);
	second.n = 0;
	CHECK(dns_filter_response(b, len, q, NULL, record_pin, &second, &len2) == 0);
	CHECK(len2 == len && !memcmp(a, b, len));
	CHECK(second.n == first.n);
	for (size_t i = 0; i < first.n; i++) {
		CHECK(!strcmp(first.p[i].name, second.p[i].name));
		CHECK(!memcmp(first.p[i].ip.b, second.p[i].ip.b, 16));
		CHECK(first.p[i].ttl == second.p[i].ttl);
	}
	free(b);
	free(a);
	return rc;
}

/* Parses @p as a query and checks what dns.h promises; returns the result. */
static int check_query(const uint8_t *p, size_t n, struct dns_question *q)
{
	static const int rcodes[] = { DNS_RCODE_NOERROR, DNS_RCODE_FORMERR, DNS_RCODE_SERVFAIL,
				      DNS_RCODE_NXDOMAIN, DNS_RCODE_REFUSED };
	uint8_t out[600];
	int rc = dns_parse_query(p, n, q);

	CHECK(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
	check_name(q->name);
	if (rc == -EBADMSG)
		CHECK(q->qlen == 0 && !q->edns && !q->name[0]);
	if (q->qlen)
		CHECK(q->qoff == DNS_HDR_SIZE && q->qlen >= 5 && q->qlen <= DNS_MAX_NAME_WIRE + 4 &&
		      q->qoff + q->qlen <= n);
	CHECK(q->udp_size >= DNS_UDP_MIN);
	CHECK(q->edns || q->udp_size == DNS_UDP_MIN);
	if (rc == 0) {
		CHECK(q->qclass == DNS_CLASS_IN && q->qtype != 0 && q->qtype != DNS_TYPE_OPT);
		CHECK(!(q->flags & (DNS_F_QR | DNS_F_TC)) && ((q->flags >> 11) & 0xf) == 0);
	}
	if (n < DNS_HDR_SIZE)
		return rc;

	if (rc == 0) {
		/* The query sent upstream is rebuilt: it parses to the same question. */
		struct dns_question q2;
		size_t len = dns_build_query(p, n, q, 0x5151, out, sizeof(out));

		CHECK(len == DNS_HDR_SIZE + q->qlen + (q->edns ? 11 : 0));
		CHECK(dns_parse_query(out, len, &q2) == 0);
		CHECK(q2.id == 0x5151 && q2.qtype == q->qtype && !strcmp(q2.name, q->name));
		CHECK(q2.edns == q->edns && q2.dnssec_ok == q->dnssec_ok);
		CHECK((q2.flags & ~(DNS_F_RD | DNS_F_CD)) == 0);
		CHECK(!memcmp(out + DNS_HDR_SIZE, p + q->qoff, q->qlen));
		CHECK(dns_build_query(p, n, q, 0x5151, out, len - 1) == 0);
	}
	for (size_t i = 0; i < sizeof(rcodes) / sizeof(rcodes[0]); i++) {
		size_t len = dns_build_reply(p, n, q, rcodes[i], out, sizeof(out));

		CHECK(len == DNS_HDR_SIZE + q->qlen + (q->edns ? 11 : 0));
		CHECK(len <= DNS_UDP_MIN); /* fits any client */
		CHECK(be16(out) == q->id && (be16(out + 2) & 0xf) == (unsigned int)rcodes[i]);
		CHECK(be16(out + 2) & DNS_F_QR);
		CHECK(!memcmp(out + DNS_HDR_SIZE, p + q->qoff, q->qlen));
		/* msb's own answer passes its own filter untouched. */
		if (q->qlen)
			CHECK(check_filter(out, len, q, 3) == 0);
		CHECK(dns_build_reply(p, n, q, rcodes[i], out, len - 1) == 0);
	}
	return rc;
}

static void check_tcp(const uint8_t *p, size_t n)
{
	size_t len = SIZE_MAX;
	int rc = dns_tcp_frame(p, n, &len);

	if (n < 2) {
		CHECK(rc == 0);
	} else if (be16(p) < DNS_HDR_SIZE) {
		CHECK(rc == -EBADMSG);
	} else if (rc == 1) {
		CHECK(len == be16(p) && len <= n - 2);
	} else {
		CHECK(rc == 0 && be16(p) > n - 2);
	}
}

/*
 * The query a stub would have sent for the answer @p: its id, RD, and its
 * question copied as it stands (uncompressed labels). Return: its length, 0 if none.
 */
static size_t query_for(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
	size_t off = DNS_HDR_SIZE, len;

	if (n < DNS_HDR_SIZE)
		return 0;
	while (off < n && p[off] && p[off] < 64)
		off += 1 + p[off];
	if (off >= n || p[off] || n - off < 5)
		return 0;
	len = off + 5;
	if (len > cap)
		return 0;
	memcpy(out, p, len);
	out[2] = DNS_F_RD >> 8;
	out[3] = 0;
	memcpy(out + 4, "\0\1\0\0\0\0\0\0", 8);
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_question q;
	unsigned int mode, dropmode;

	if (size < 1)
		return 0;
	mode = data[0] & 3;
	dropmode = (data[0] >> 2) & 3;
	data++;
	size--;

	switch (mode) {
	case 0:
		check_query(data, size, &q);
		check_tcp(data, size);
		break;
	case 1: {
		uint8_t query[DNS_HDR_SIZE + DNS_MAX_NAME_WIRE + 4];
		size_t qlen = query_for(data, size, query, sizeof(query));

		if (qlen && dns_parse_query(query, qlen, &q) == 0)
			check_filter(data, size, &q, dropmode);
		break;
	}
	default: {
		size_t qlen;

		if (size < 2)
			break;
		qlen = be16(data);
		if (qlen > size - 2)
			qlen = size - 2;
		if (check_query(data + 2, qlen, &q) == 0 || q.qlen)
			check_filter(data + 2 + qlen, size - 2 - qlen, &q, dropmode);
		break;
	}
	}
	return 0;
}
