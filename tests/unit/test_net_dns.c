// SPDX-License-Identifier: Apache-2.0
/* Unit tests for DNS: the guest's queries, msb's replies, filtering upstream answers, TCP framing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/addr.h"
#include "net/dns.h"

/* --- message builder ---------------------------------------------------- */

struct msg {
	uint8_t b[16384];
	size_t n;
};

static void p8(struct msg *m, unsigned int v)
{
	assert_true(m->n < sizeof(m->b));
	m->b[m->n++] = (uint8_t)v;
}

static void p16(struct msg *m, unsigned int v)
{
	p8(m, v >> 8);
	p8(m, v & 0xff);
}

static void p32(struct msg *m, uint32_t v)
{
	p16(m, v >> 16);
	p16(m, v & 0xffff);
}

static void pbytes(struct msg *m, const void *p, size_t len)
{
	assert_true(len <= sizeof(m->b) - m->n);
	if (len)
		memcpy(m->b + m->n, p, len);
	m->n += len;
}

/* A formatted string from a small ring, so several may be in use in one call. */
static const char *F(const char *fmt, ...)
{
	static char ring[8][1024];
	static unsigned int next;
	char *s = ring[next++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return s;
}

/*
 * A name: "a.b.c" ends with the root label, "a.b@12" with a pointer to
 * offset 12, "@12" is the pointer alone, "" the root.
 * Return: the offset it starts at.
 */
static size_t pname(struct msg *m, const char *s)
{
	size_t at = m->n;

	while (*s && *s != '@') {
		size_t l = strcspn(s, ".@");

		p8(m, (unsigned int)l);
		pbytes(m, s, l);
		s += l;
		if (*s == '.')
			s++;
	}
	if (*s == '@')
		p16(m, 0xc000u | (unsigned int)strtoul(s + 1, NULL, 10));
	else
		p8(m, 0);
	return at;
}

static void phdr(struct msg *m, unsigned int id, unsigned int flags, unsigned int qd,
		 unsigned int an, unsigned int ns, unsigned int ar)
{
	m->n = 0;
	p16(m, id);
	p16(m, flags);
	p16(m, qd);
	p16(m, an);
	p16(m, ns);
	p16(m, ar);
}

static void set16(struct msg *m, size_t off, unsigned int v)
{
	m->b[off] = (uint8_t)(v >> 8);
	m->b[off + 1] = (uint8_t)v;
}

static unsigned int get16(const uint8_t *p, size_t off)
{
	return (unsigned int)p[off] << 8 | p[off + 1];
}

static void pquestion(struct msg *m, const char *name, unsigned int type, unsigned int cls)
{
	pname(m, name);
	p16(m, type);
	p16(m, cls);
}

/* A record's header up to RDLENGTH; rr_end() patches it. Return: where RDLENGTH is. */
static size_t rr_begin(struct msg *m, const char *owner, unsigned int type, unsigned int cls,
		       uint32_t ttl)
{
	size_t at;

	pname(m, owner);
	p16(m, type);
	p16(m, cls);
	p32(m, ttl);
	at = m->n;
	p16(m, 0);
	return at;
}

static void rr_end(struct msg *m, size_t at)
{
	set16(m, at, (unsigned int)(m->n - at - 2));
}

static void rr_raw(struct msg *m, const char *owner, unsigned int type, unsigned int cls,
		   uint32_t ttl, const void *data, size_t len)
{
	size_t at = rr_begin(m, owner, type, cls, ttl);

	pbytes(m, data, len);
	rr_end(m, at);
}

/* Return: the record's offset. */
static size_t rr_a(struct msg *m, const char *owner, uint32_t ttl, const char *ip)
{
	size_t start = m->n;
	uint8_t b[16];
	bool v6 = strchr(ip, ':') != NULL;

	assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, ip, b), 1);
	rr_raw(m, owner, v6 ? DNS_TYPE_AAAA : DNS_TYPE_A, DNS_CLASS_IN, ttl, b, v6 ? 16 : 4);
	return start;
}

/* A record whose RDATA is one name. Return: the name's offset. */
static size_t rr_name(struct msg *m, const char *owner, unsigned int type, uint32_t ttl,
		      const char *target)
{
	size_t at = rr_begin(m, owner, type, DNS_CLASS_IN, ttl), t = pname(m, target);

	rr_end(m, at);
	return t;
}

static void rr_opt(struct msg *m, unsigned int size)
{
	rr_raw(m, "", DNS_TYPE_OPT, size, 0, NULL, 0);
}

/* A query as a stub resolver sends it. */
static void build_query(struct msg *m, unsigned int id, const char *name, unsigned int type)
{
	phdr(m, id, DNS_F_RD, 1, 0, 0, 0);
	pquestion(m, name, type, DNS_CLASS_IN);
}

static struct ipaddr ip_of(const char *s)
{
	struct ipaddr a;

	assert_int_equal(ip_parse(s, &a), 0);
	return a;
}

/* --- callbacks ------------------------------------------------------------ */

struct pinned {
	char name[DNS_MAX_NAME_TEXT + 1];
	struct ipaddr ip;
	uint32_t ttl;
};

struct seen {
	struct pinned pins[64];
	size_t npins;
	size_t asked; /* drop() calls */
};

static void record_pin(const char *name, const struct ipaddr *ip, uint32_t ttl, void *ctx)
{
	struct seen *s = ctx;

	assert_true(s->npins < 64);
	assert_true(strlen(name) <= DNS_MAX_NAME_TEXT);
	strcpy(s->pins[s->npins].name, name);
	s->pins[s->npins].ip = *ip;
	s->pins[s->npins].ttl = ttl;
	s->npins++;
}

/* Rebind protection as the caller does it: private, loopback and link-local go. */
static bool drop_internal(const struct ipaddr *ip, void *ctx)
{
	struct seen *s = ctx;

	s->asked++;
	return (ip_groups(ip) & (IPG_PRIVATE | IPG_LOOPBACK | IPG_LINK_LOCAL)) != 0;
}

static bool drop_all(const struct ipaddr *ip, void *ctx)
{
	(void)ip;
	((struct seen *)ctx)->asked++;
	return true;
}

static void assert_pin(const struct seen *s, size_t i, const char *name, const char *ip,
		       uint32_t ttl)
{
	struct ipaddr want = ip_of(ip);

	assert_true(i < s->npins);
	assert_string_equal(s->pins[i].name, name);
	assert_memory_equal(s->pins[i].ip.b, want.b, 16);
	assert_int_equal(s->pins[i].ttl, ttl);
}

/* The question of @query, which must parse. */
static struct dns_question question_of(const struct msg *query)
{
	struct dns_question q;

	assert_int_equal(dns_parse_query(query->b, query->n, &q), 0);
	return q;
}

static struct dns_question simple_question(const char *name, unsigned int type)
{
	struct msg m;

	build_query(&m, 0x1234, name, type);
	return question_of(&m);
}

/* Filters a copy of @m, expecting -EBADMSG, no pin and the bytes left alone. */
static void assert_refused(const struct msg *m, const struct dns_question *q)
{
	struct msg c = *m;
	struct seen s = { 0 };
	size_t len = 0xdead;

	assert_int_equal(dns_filter_response(c.b, c.n, q, drop_internal, record_pin, &s, &len),
			 -EBADMSG);
	assert_int_equal(s.npins, 0);
	assert_int_equal(len, 0xdead);
	assert_memory_equal(c.b, m->b, m->n);
}

/* --- queries ---------------------------------------------------------------- */

static void test_query_basic(void **state)
{
	struct msg m;
	struct dns_question q;

	(void)state;
	build_query(&m, 0xbeef, "WWW.Example.COM", DNS_TYPE_AAAA);
	memset(&q, 0xaa, sizeof(q));
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_int_equal(q.id, 0xbeef);
	assert_int_equal(q.flags, DNS_F_RD);
	assert_string_equal(q.name, "www.example.com");
	assert_int_equal(q.qtype, DNS_TYPE_AAAA);
	assert_int_equal(q.qclass, DNS_CLASS_IN);
	assert_false(q.edns);
	assert_int_equal(q.udp_size, 512);
	assert_int_equal(q.qoff, 12);
	assert_int_equal(q.qlen, 17 + 4);
	assert_int_equal(q.qoff + q.qlen, m.n);
}

static void test_query_root_and_chars(void **state)
{
	struct msg m;
	struct dns_question q;

	(void)state;
	build_query(&m, 1, "", DNS_TYPE_NS);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_string_equal(q.name, "");
	assert_int_equal(q.qlen, 5);

	build_query(&m, 1, "_sip._tcp.my-host-1.Example", DNS_TYPE_SRV);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_string_equal(q.name, "_sip._tcp.my-host-1.example");

	build_query(&m, 1, "xn--bcher-kva.example", DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_string_equal(q.name, "xn--bcher-kva.example");

	build_query(&m, 1, "_dmarc.example", DNS_TYPE_ANY);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_int_equal(q.qtype, DNS_TYPE_ANY);
}

/* Every byte but [A-Za-z0-9_-] in a label is refused, wherever it is. */
static void test_query_bad_chars(void **state)
{
	(void)state;
	for (unsigned int c = 0; c < 256; c++) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_';
		struct msg m;
		struct dns_question q;
		uint8_t label[] = {
			3, 'a', (uint8_t)c, 'b', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0
		};

		phdr(&m, 7, 0, 1, 0, 0, 0);
		pbytes(&m, label, sizeof(label));
		p16(&m, DNS_TYPE_A);
		p16(&m, DNS_CLASS_IN);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), ok ? 0 : -EBADMSG);
		if (ok) {
			assert_int_equal(strlen(q.name), 11);
			assert_true(q.name[1] == (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
		} else {
			assert_int_equal(q.qlen, 0);
			assert_string_equal(q.name, "");
			assert_int_equal(q.id, 7);
		}
	}
}

static void test_query_label_lengths(void **state)
{
	char label[70];
	struct msg m;
	struct dns_question q;

	(void)state;
	memset(label, 'a', sizeof(label));
	label[63] = '\0';
	build_query(&m, 1, F("%s.example", label), DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_int_equal(strlen(q.name), 63 + 8);

	/* Lengths 64-255: the 0x40 and 0x80 label kinds, and pointers (0xc0) in a query. */
	for (unsigned int l = 64; l < 256; l++) {
		phdr(&m, 1, 0, 1, 0, 0, 0);
		p8(&m, l);
		for (unsigned int i = 0; i < (l < 192 ? l : 1); i++)
			p8(&m, 'a');
		p8(&m, 0);
		p16(&m, DNS_TYPE_A);
		p16(&m, DNS_CLASS_IN);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	}

	/* A pointer, even to a plausible place. */
	phdr(&m, 1, 0, 1, 0, 0, 0);
	pname(&m, "www@12");
	p16(&m, DNS_TYPE_A);
	p16(&m, DNS_CLASS_IN);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
}

/* 253 characters of text (255 wire bytes) is the most; one more is refused. */
static void test_query_name_length(void **state)
{
	char name[300];
	struct msg m;
	struct dns_question q;

	(void)state;
	/* 3 x 63 + 61 letters and 3 dots: 253 characters. */
	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.61s", F("%0128d", 0), F("%0128d", 0),
		 F("%0128d", 0), F("%0128d", 0));
	assert_int_equal(strlen(name), 253);
	build_query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_string_equal(q.name, name);
	assert_int_equal(q.qlen, 255 + 4);

	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.62s", F("%0128d", 0), F("%0128d", 0),
		 F("%0128d", 0), F("%0128d", 0));
	build_query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);

	/* Many short labels: 127 of "a" is 254 wire bytes, 128 is too many. */
	name[0] = '\0';
	for (int i = 0; i < 127; i++)
		strcat(name, i ? ".a" : "a");
	build_query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	strcat(name, ".a");
	build_query(&m, 1, name, DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
}

static void test_query_header(void **state)
{
	struct msg m;
	struct dns_question q;

	(void)state;
	/* An answer is not a query; TC makes no sense in one. */
	build_query(&m, 1, "a.example", DNS_TYPE_A);
	set16(&m, 2, DNS_F_QR | DNS_F_RD);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 2, DNS_F_TC);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	/* Other opcodes: IQUERY, STATUS, NOTIFY, UPDATE. */
	for (unsigned int op = 1; op < 16; op++) {
		set16(&m, 2, op << 11 | DNS_F_RD);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EPROTONOSUPPORT);
		assert_int_equal(q.qlen, 0);
		assert_int_equal(q.id, 1);
	}
	/* CD, AD and the like pass. */
	set16(&m, 2, DNS_F_RD | DNS_F_CD | DNS_F_AD);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_int_equal(q.flags, DNS_F_RD | DNS_F_CD | DNS_F_AD);

	/* Counts: exactly one question, nothing else. */
	set16(&m, 4, 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 4, 2);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 4, 1);
	set16(&m, 6, 1);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 6, 0);
	set16(&m, 8, 1);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 8, 0);
	set16(&m, 10, 1); /* says there is an OPT record; there is none */
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	set16(&m, 10, 0);

	/* A byte after the question. */
	p8(&m, 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	m.n--;
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);

	/* Too long for any transport. */
	{
		static uint8_t big[DNS_MAX_MSG + 1];

		memcpy(big, m.b, m.n);
		assert_int_equal(dns_parse_query(big, sizeof(big), &q), -EBADMSG);
	}
}

static void test_query_types_and_classes(void **state)
{
	static const unsigned int refused[] = { 249, 250, 251, 252, 253, 254, 128, 200 };
	struct msg m;
	struct dns_question q;

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		build_query(&m, 9, "zone.example", refused[i]);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EPROTONOSUPPORT);
		/* Well-formed: the question stays, for a reply that echoes it. */
		assert_int_equal(q.qoff, 12);
		assert_int_equal(q.qlen, m.n - 12);
		assert_string_equal(q.name, "zone.example");
	}
	build_query(&m, 9, "zone.example", 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	build_query(&m, 9, "zone.example", DNS_TYPE_OPT);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	for (unsigned int t = 1; t < 128; t++) {
		if (t == DNS_TYPE_OPT)
			continue;
		build_query(&m, 9, "zone.example", t);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	}
	build_query(&m, 9, "zone.example", 65280);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);

	/* CHAOS (version.bind), HESIOD, ANY class. */
	for (unsigned int c = 2; c < 6; c++) {
		phdr(&m, 9, 0, 1, 0, 0, 0);
		pquestion(&m, "version.bind", DNS_TYPE_TXT, c == 5 ? 255 : c);
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EPROTONOSUPPORT);
		assert_int_equal(q.qlen, m.n - 12);
	}
}

static void test_query_edns(void **state)
{
	static const uint8_t cookie[] = { 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8 };
	struct msg m;
	struct dns_question q;

	(void)state;
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "", DNS_TYPE_OPT, 4096, 0x00008000 /* DO */, cookie, sizeof(cookie));
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_true(q.edns);
	assert_int_equal(q.udp_size, 4096);
	assert_int_equal(q.qlen, 11 + 4);

	/* A payload size under 512 means 512. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&m, 100);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_int_equal(q.udp_size, 512);

	/* Version 1: well-formed, not served. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "", DNS_TYPE_OPT, 1232, 0x00010000, NULL, 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EPROTONOSUPPORT);
	assert_false(q.edns);

	/* Not an OPT record: only OPT may follow a query's question. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "", 250 /* TSIG */, 255, 0, NULL, 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);

	/* An owner other than the root. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "x", DNS_TYPE_OPT, 1232, 0, NULL, 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);

	/* The root by a pointer (to the question's last byte): no compression in queries. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "@22", DNS_TYPE_OPT, 1232, 0, NULL, 0);
	assert_int_equal(m.b[22], 0);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);

	/* An option longer than the RDATA, and one cut short. */
	{
		static const uint8_t over[] = { 0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8 };
		static const uint8_t half[] = { 0, 10, 0 };

		phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		rr_raw(&m, "", DNS_TYPE_OPT, 1232, 0, over, sizeof(over));
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
		phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		rr_raw(&m, "", DNS_TYPE_OPT, 1232, 0, half, sizeof(half));
		assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	}

	/* RDLENGTH past the end. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&m, 1232);
	set16(&m, m.n - 2, 4);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);

	/* Two OPT records. */
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 2);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&m, 1232);
	rr_opt(&m, 1232);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
}

/* The query msb sends upstream is rebuilt: the guest's options and odd flags stay home. */
static void test_query_rebuilt_for_upstream(void **state)
{
	static const uint8_t opts[] = { 0, 8,  0, 7, 0, 1, 24, 0, 10, 1, 2,	 /* client subnet */
					0, 10, 0, 8, 1, 2, 3,  4, 5,  6, 7, 8 }; /* cookie */
	struct msg m, want;
	struct dns_question q;
	uint8_t out[600];
	size_t len;

	(void)state;
	/* RD, CD and AD set by the guest, EDNS with DO, 65000 bytes, two options. */
	phdr(&m, 0x0505, DNS_F_RD | DNS_F_CD | DNS_F_AD, 1, 0, 0, 1);
	pquestion(&m, "A.Example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	rr_raw(&m, "", DNS_TYPE_OPT, 65000, 0x00008000, opts, sizeof(opts));
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	assert_true(q.dnssec_ok);
	len = dns_build_query(m.b, m.n, &q, 0xbeef, out, sizeof(out));
	/* Fresh id, RD and CD only, the question byte for byte, an OPT of our own. */
	phdr(&want, 0xbeef, DNS_F_RD | DNS_F_CD, 1, 0, 0, 1);
	pquestion(&want, "A.Example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	rr_raw(&want, "", DNS_TYPE_OPT, DNS_UDP_MAX_UP, 0x00008000, NULL, 0);
	assert_int_equal(len, want.n);
	assert_memory_equal(out, want.b, want.n);
	assert_int_equal(dns_build_query(m.b, m.n, &q, 0xbeef, out, len - 1), 0);

	/* No EDNS from the guest: none upstream either. */
	build_query(&m, 7, "a.example", DNS_TYPE_A);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	len = dns_build_query(m.b, m.n, &q, 9, out, sizeof(out));
	build_query(&want, 9, "a.example", DNS_TYPE_A);
	assert_int_equal(len, want.n);
	assert_memory_equal(out, want.b, want.n);

	/* A query that did not parse is never sent. */
	m.n = 5;
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	assert_int_equal(dns_build_query(m.b, m.n, &q, 9, out, sizeof(out)), 0);
}

/* Every truncation of a good query is refused, and leaves no question behind. */
static void test_query_truncations(void **state)
{
	struct msg m;
	struct dns_question q;

	(void)state;
	phdr(&m, 5, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "www.example.com", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "", DNS_TYPE_OPT, 1232, 0, "\0\x0a\0\x02xy", 6);
	assert_int_equal(dns_parse_query(m.b, m.n, &q), 0);
	for (size_t len = 0; len < m.n; len++) {
		assert_int_equal(dns_parse_query(m.b, len, &q), -EBADMSG);
		assert_int_equal(q.qlen, 0);
		assert_false(q.edns);
		assert_int_equal(q.udp_size, 512);
		assert_int_equal(q.id, len >= 12 ? 5 : 0);
	}
}

/* --- msb's replies --------------------------------------------------------- */

static void test_reply_nxdomain(void **state)
{
	static const uint8_t want[] = {
		0xbe, 0xef,			      /* id */
		0x81, 0x83,			      /* QR, RD, RA, NXDOMAIN */
		0,    1,    0,	 0,   0, 0,   0,   0, /* one question */
		3,    'w',  'W', 'w', 4, 'T', 'e', 's', 't', 0, 0, 1, 0, 1,
	};
	struct msg m;
	struct dns_question q;
	uint8_t out[512];

	(void)state;
	build_query(&m, 0xbeef, "wWw.Test", DNS_TYPE_A);
	q = question_of(&m);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out)),
			 sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	/* The other rcodes differ in the low bits only; RD is copied, not set. */
	set16(&m, 2, 0);
	q = question_of(&m);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_REFUSED, out, sizeof(out)),
			 sizeof(want));
	assert_int_equal(get16(out, 2), 0x8085);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_SERVFAIL, out, sizeof(out)),
			 sizeof(want));
	assert_int_equal(get16(out, 2), 0x8082);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_NOERROR, out, sizeof(out)),
			 sizeof(want));
	assert_int_equal(get16(out, 2), 0x8080);

	/* CD is copied too, AD is not. */
	set16(&m, 2, DNS_F_RD | DNS_F_CD | DNS_F_AD);
	q = question_of(&m);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out)),
			 sizeof(want));
	assert_int_equal(get16(out, 2), 0x8193);
}

static void test_reply_edns(void **state)
{
	static const uint8_t opt[] = { 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0 };
	struct msg m;
	struct dns_question q;
	uint8_t out[512];
	size_t len, flen;
	struct seen s = { 0 };

	(void)state;
	phdr(&m, 77, DNS_F_RD, 1, 0, 0, 1);
	pquestion(&m, "blocked.example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	rr_raw(&m, "", DNS_TYPE_OPT, 4096, 0x8000, NULL, 0);
	q = question_of(&m);
	len = dns_build_reply(m.b, m.n, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out));
	assert_int_equal(len, 12 + q.qlen + 11);
	assert_int_equal(get16(out, 10), 1);
	assert_memory_equal(out + 12, m.b + 12, q.qlen);
	assert_memory_equal(out + 12 + q.qlen, opt, sizeof(opt));

	/* It is a well-formed answer to the question. */
	assert_int_equal(dns_filter_response(out, len, &q, drop_internal, record_pin, &s, &flen),
			 0);
	assert_int_equal(flen, len);
	assert_int_equal(s.npins, 0);
}

static void test_reply_limits(void **state)
{
	struct msg m;
	struct dns_question q;
	uint8_t out[512];
	size_t len;

	(void)state;
	build_query(&m, 3, "a.example", DNS_TYPE_A);
	q = question_of(&m);
	len = 12 + q.qlen;
	assert_int_equal(dns_build_reply(m.b, m.n, &q, 3, out, len), len);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, 3, out, len - 1), 0);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, 3, NULL, 0), 0);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, 16, out, sizeof(out)), 0);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, -1, out, sizeof(out)), 0);
	/* A question that is not in @query. */
	assert_int_equal(dns_build_reply(m.b, m.n - 1, &q, 3, out, sizeof(out)), 0);
	q.qoff = 4;
	assert_int_equal(dns_build_reply(m.b, m.n, &q, 3, out, sizeof(out)), 0);
}

/* A query too broken to parse still gets a FORMERR with its id and no question. */
static void test_reply_formerr(void **state)
{
	static const uint8_t want[] = { 0, 42, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct msg m;
	struct dns_question q;
	uint8_t out[512];

	(void)state;
	build_query(&m, 42, "a.example", DNS_TYPE_A);
	m.b[12] = 0xc0;
	assert_int_equal(dns_parse_query(m.b, m.n, &q), -EBADMSG);
	assert_int_equal(dns_build_reply(m.b, m.n, &q, DNS_RCODE_FORMERR, out, sizeof(out)),
			 sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* --- TCP framing ------------------------------------------------------------- */

static void test_tcp_frame(void **state)
{
	uint8_t s[64] = { 0, 12 };
	size_t len = 0;

	(void)state;
	assert_int_equal(dns_tcp_frame(s, 0, &len), 0);
	assert_int_equal(dns_tcp_frame(s, 1, &len), 0);
	for (size_t n = 2; n < 14; n++)
		assert_int_equal(dns_tcp_frame(s, n, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(dns_tcp_frame(s, 14, &len), 1);
	assert_int_equal(len, 12);
	len = 0;
	assert_int_equal(dns_tcp_frame(s, sizeof(s), &len), 1); /* the next one follows */
	assert_int_equal(len, 12);

	s[1] = 0;
	assert_int_equal(dns_tcp_frame(s, 1, &len), 0);
	assert_int_equal(dns_tcp_frame(s, 2, &len), -EBADMSG);
	s[1] = 11;
	assert_int_equal(dns_tcp_frame(s, 2, &len), -EBADMSG);

	/* The largest length: needs all of it. */
	{
		static uint8_t big[2 + 65535];

		big[0] = 0xff;
		big[1] = 0xff;
		assert_int_equal(dns_tcp_frame(big, sizeof(big) - 1, &len), 0);
		assert_int_equal(dns_tcp_frame(big, sizeof(big), &len), 1);
		assert_int_equal(len, 65535);
	}
}

/* --- upstream answers ---------------------------------------------------------- */

static void test_filter_public(void **state)
{
	struct dns_question q = simple_question("example.com", DNS_TYPE_A);
	struct msg m, orig;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, 2, 0, 0);
	pquestion(&m, "example.com", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "@12", 300, "93.184.216.34");
	rr_a(&m, "@12", 200, "198.51.100.7");
	orig = m;
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(len, m.n);
	assert_memory_equal(m.b, orig.b, m.n);
	assert_int_equal(s.asked, 2);
	assert_int_equal(s.npins, 2);
	assert_pin(&s, 0, "example.com", "93.184.216.34", 300);
	assert_pin(&s, 1, "example.com", "198.51.100.7", 200);

	/* No callbacks at all. */
	assert_int_equal(dns_filter_response(m.b, m.n, &q, NULL, NULL, NULL, &len), 0);
	assert_int_equal(len, m.n);
}

static void test_filter_aaaa(void **state)
{
	struct dns_question q = simple_question("v6.example", DNS_TYPE_AAAA);
	struct msg m, want;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 4, 0, 0);
	pquestion(&m, "v6.example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	rr_a(&m, "@12", 60, "fd00::1");		     /* unique local: private */
	rr_a(&m, "@12", 60, "2001:4860:4860::8888"); /* public */
	rr_a(&m, "@12", 60, "::ffff:10.1.2.3");	     /* v4-mapped private */
	rr_a(&m, "@12", 60, "fe80::1");		     /* link-local */
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);

	phdr(&want, 0x1234, DNS_F_QR | DNS_F_RA, 1, 1, 0, 0);
	pquestion(&want, "v6.example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	rr_a(&want, "@12", 60, "2001:4860:4860::8888");
	assert_int_equal(len, want.n);
	assert_memory_equal(m.b, want.b, want.n);
	assert_int_equal(s.npins, 1);
	assert_pin(&s, 0, "v6.example", "2001:4860:4860::8888", 60);
}

static void test_filter_all_private(void **state)
{
	struct dns_question q = simple_question("rebind.example", DNS_TYPE_A);
	struct msg m, want;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, 3, 0, 1);
	pquestion(&m, "rebind.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "@12", 5, "10.0.0.1");
	rr_a(&m, "@12", 5, "127.0.0.1");
	rr_a(&m, "@12", 5, "169.254.169.254");
	rr_opt(&m, 1232);
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 1);
	assert_int_equal(s.npins, 0);
	assert_int_equal(s.asked, 3);

	phdr(&want, 0x1234, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, 0, 0, 1);
	pquestion(&want, "rebind.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&want, 1232);
	assert_int_equal(len, want.n);
	assert_memory_equal(m.b, want.b, want.n);

	/* drop-all on a public answer is the same. */
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 1, 0, 0);
	pquestion(&m, "rebind.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "@12", 5, "8.8.8.8");
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_all, record_pin, &s, &len), 1);
	assert_int_equal(len, 12 + q.qlen);
	assert_int_equal(get16(m.b, 6), 0);
}

/* An empty answer (NODATA) and NXDOMAIN pass untouched: nothing was dropped. */
static void test_filter_no_addresses(void **state)
{
	static const uint8_t soa_tail[20] = { 0, 0,    0, 1, 0,	   0,	 0x0e, 0x10, 0, 0,
					      2, 0x58, 0, 9, 0x3a, 0x80, 0,    0,    0, 60 };
	struct dns_question q = simple_question("nope.example", DNS_TYPE_A);
	struct msg m, orig;
	struct seen s = { 0 };
	size_t len, at;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA | DNS_RCODE_NXDOMAIN, 1, 0, 1, 0);
	pquestion(&m, "nope.example", DNS_TYPE_A, DNS_CLASS_IN);
	at = rr_begin(&m, "@17", DNS_TYPE_SOA, DNS_CLASS_IN, 60);
	pname(&m, "ns1@17");
	pname(&m, "hostmaster@17");
	pbytes(&m, soa_tail, sizeof(soa_tail));
	rr_end(&m, at);
	orig = m;
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_all, record_pin, &s, &len), 0);
	assert_int_equal(len, m.n);
	assert_memory_equal(m.b, orig.b, m.n);
	assert_int_equal(s.asked, 0);
	assert_int_equal(s.npins, 0);

	/* SOA RDATA one byte short, and one too long. */
	set16(&m, at, get16(m.b, at) - 1);
	m.n--;
	assert_refused(&m, &q);
	m = orig;
	set16(&m, at, get16(m.b, at) + 1);
	p8(&m, 0);
	assert_refused(&m, &q);
}

/*
 * The whole shape: a CNAME chain, compression everywhere, private and public
 * addresses, authority and glue pointing across the records that go. With
 * @cut the dropped records are left out, which is exactly what filtering
 * must produce, pointers included.
 */
static void build_chain(struct msg *m, bool cut)
{
	size_t t1, t2, ns1;

	phdr(m, 0x4242, DNS_F_QR | DNS_F_RD | DNS_F_RA, 1, cut ? 4 : 7, 1, 3);
	pquestion(m, "wWw.Example.COM", DNS_TYPE_A, DNS_CLASS_IN);
	t1 = rr_name(m, "@12", DNS_TYPE_CNAME, 20, "www.example.net");
	if (!cut)
		rr_a(m, "@12", 100, "10.9.9.9"); /* on the chain (the question's name), private */
	t2 = rr_name(m, F("@%zu", t1), DNS_TYPE_CNAME, 30, "edge.cdn@16");
	if (!cut) {
		rr_a(m, F("@%zu", t2), 60, "10.0.0.1");
		rr_a(m, F("@%zu", t2), 60, "192.168.1.1");
	}
	rr_a(m, F("@%zu", t2), 60, "93.184.216.34");
	rr_a(m, F("@%zu", t2), 45, "198.51.100.20");
	/* Authority: its owner points before the cuts, its NS name lands after them. */
	ns1 = rr_name(m, F("@%zu", t1 + 4), DNS_TYPE_NS, 3600, F("ns1@%zu", t1 + 4));
	/* Additional: glue owned by a name after the cuts; glue is never filtered. */
	rr_a(m, F("@%zu", ns1), 3600, "10.53.0.1");
	rr_a(m, F("@%zu", ns1), 3600, "2001:db8::53");
	rr_opt(m, 1232);
}

static void test_filter_chain_rewrite(void **state)
{
	struct dns_question q = simple_question("www.example.com", DNS_TYPE_A);
	struct msg m, want;
	struct seen s = { 0 }, again = { 0 };
	size_t len, len2;

	(void)state;
	q.id = 0x4242;
	build_chain(&m, false);
	build_chain(&want, true);
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(len, want.n);
	assert_memory_equal(m.b, want.b, want.n);
	assert_int_equal(s.asked, 5);
	/* Pinned under the question only (with the smallest TTL on the way), never under
	 * the CNAME's target, a name the answering zone chose. */
	assert_int_equal(s.npins, 2);
	assert_pin(&s, 0, "www.example.com", "93.184.216.34", 20);
	assert_pin(&s, 1, "www.example.com", "198.51.100.20", 20);

	/* Filtering again changes nothing and pins the same. */
	assert_int_equal(
		dns_filter_response(m.b, len, &q, drop_internal, record_pin, &again, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(m.b, want.b, want.n);
	assert_int_equal(again.npins, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(again.pins[i].name, s.pins[i].name);
		assert_memory_equal(again.pins[i].ip.b, s.pins[i].ip.b, 16);
		assert_int_equal(again.pins[i].ttl, s.pins[i].ttl);
	}
}

/* CNAMEs in any order, a loop in the chain, a stray record off the chain. */
static void test_filter_chain_order_and_strays(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m, want;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	/* b -> c listed before a -> b; c -> a closes a loop. */
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 6, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_name(&m, "b@14", DNS_TYPE_CNAME, 40, "c@14");
	rr_name(&m, "@12", DNS_TYPE_CNAME, 200, "B@14");
	rr_name(&m, "c@14", DNS_TYPE_CNAME, 50, "a@14");
	rr_a(&m, "C@14", 80, "203.0.113.5");
	rr_a(&m, "evil.example", 80, "203.0.113.66"); /* nobody asked */
	rr_a(&m, "a@14", 10, "203.0.113.7");
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(s.asked, 2); /* the stray is never offered */
	assert_int_equal(s.npins, 2);
	assert_pin(&s, 0, "a.example", "203.0.113.5", 40);
	assert_pin(&s, 1, "a.example", "203.0.113.7", 10);

	phdr(&want, 0x1234, DNS_F_QR | DNS_F_RA, 1, 5, 0, 0);
	pquestion(&want, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_name(&want, "b@14", DNS_TYPE_CNAME, 40, "c@14");
	rr_name(&want, "@12", DNS_TYPE_CNAME, 200, "B@14");
	rr_name(&want, "c@14", DNS_TYPE_CNAME, 50, "a@14");
	rr_a(&want, "C@14", 80, "203.0.113.5");
	rr_a(&want, "a@14", 10, "203.0.113.7");
	assert_int_equal(len, want.n);
	assert_memory_equal(m.b, want.b, want.n);

	/* Only a stray: removed, but nothing was dropped, so it is not "nothing left". */
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 1, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "evil.example", 80, "203.0.113.66");
	memset(&s, 0, sizeof(s));
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(len, 12 + q.qlen);
	assert_int_equal(get16(m.b, 6), 0);
	assert_int_equal(s.npins, 0);
}

/* Owner names that are not host names are not pinned; the question's name still is. */
static void test_filter_odd_owner(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 2, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_name(&m, "@12", DNS_TYPE_CNAME, 100, "we*rd.example");
	rr_a(&m, "WE*RD.example", 80, "203.0.113.5");
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(len, m.n);
	assert_int_equal(s.npins, 1);
	assert_pin(&s, 0, "a.example", "203.0.113.5", 80);
}

static void test_filter_0x20_and_ttl(void **state)
{
	struct dns_question q = simple_question("mixed.example.org", DNS_TYPE_A);
	struct msg m;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	phdr(&m, 0x1234, DNS_F_QR | DNS_F_RA, 1, 1, 0, 0);
	pquestion(&m, "MiXeD.eXaMpLe.OrG", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "@12", 0x80000001u, "203.0.113.1"); /* TTL with the top bit: zero */
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_pin(&s, 0, "mixed.example.org", "203.0.113.1", 0);
}

static void test_filter_not_the_answer(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m;

	(void)state;
#define ANSWER(id, flags, qd, name, type, cls)                                                     \
	do {                                                                                       \
		phdr(&m, id, flags, qd, 1, 0, 0);                                                  \
		if (qd)                                                                            \
			pquestion(&m, name, type, cls);                                            \
		rr_a(&m, "a.example", 60, "203.0.113.1");                                          \
	} while (0)
	ANSWER(0x1235, DNS_F_QR, 1, "a.example", DNS_TYPE_A, DNS_CLASS_IN); /* wrong id */
	assert_refused(&m, &q);
	ANSWER(0x1234, 0, 1, "a.example", DNS_TYPE_A, DNS_CLASS_IN); /* QR clear */
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR | 2u << 11, 1, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 1, "b.example", DNS_TYPE_A, DNS_CLASS_IN);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 1, "a.example.com", DNS_TYPE_A, DNS_CLASS_IN);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 1, "a", DNS_TYPE_A, DNS_CLASS_IN);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 1, "a.example", DNS_TYPE_AAAA, DNS_CLASS_IN);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 1, "a.example", DNS_TYPE_A, 3);
	assert_refused(&m, &q);
	ANSWER(0x1234, DNS_F_QR, 0, "", 0, 0); /* no question */
	assert_refused(&m, &q);
	phdr(&m, 0x1234, DNS_F_QR, 2, 0, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	assert_refused(&m, &q);
#undef ANSWER

	/* The right one, for contrast, TC and all (the caller passes TC on). */
	{
		struct seen s = { 0 };
		size_t len;

		phdr(&m, 0x1234, DNS_F_QR | DNS_F_TC, 1, 1, 0, 0);
		pquestion(&m, "A.example", DNS_TYPE_A, DNS_CLASS_IN);
		rr_a(&m, "a.example", 60, "203.0.113.1");
		assert_int_equal(
			dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
		assert_int_equal(s.npins, 1);
	}

	/* A question msb could not have parsed is the caller's error. */
	{
		struct dns_question bad = q;
		size_t len;

		strcpy(bad.name, "a..example");
		assert_int_equal(dns_filter_response(m.b, m.n, &bad, NULL, NULL, NULL, &len),
				 -EINVAL);
		strcpy(bad.name, "a.example.");
		assert_int_equal(dns_filter_response(m.b, m.n, &bad, NULL, NULL, NULL, &len),
				 -EINVAL);
		strcpy(bad.name, "*.example");
		assert_int_equal(dns_filter_response(m.b, m.n, &bad, NULL, NULL, NULL, &len),
				 -EINVAL);
		memset(bad.name, 'a', sizeof(bad.name));
		assert_int_equal(dns_filter_response(m.b, m.n, &bad, NULL, NULL, NULL, &len),
				 -EINVAL);
	}
}

/* Every prefix of a full answer is refused; nothing is pinned or changed. */
static void test_filter_truncations(void **state)
{
	struct dns_question q = simple_question("www.example.com", DNS_TYPE_A);
	struct msg m, t;

	(void)state;
	q.id = 0x4242;
	build_chain(&m, false);
	for (size_t len = 0; len < m.n; len++) {
		t = m;
		t.n = len;
		assert_refused(&t, &q);
	}
	/* And a byte more than it says. */
	t = m;
	p8(&t, 0);
	assert_refused(&t, &q);
}

static void test_filter_counts(void **state)
{
	struct dns_question q = simple_question("www.example.com", DNS_TYPE_A);
	struct msg m, t;

	(void)state;
	q.id = 0x4242;
	build_chain(&m, false);
	for (size_t off = 6; off <= 10; off += 2) {
		t = m;
		set16(&t, off, get16(t.b, off) + 1);
		assert_refused(&t, &q);
		set16(&t, off, 0xffff);
		assert_refused(&t, &q);
		if (get16(m.b, off)) {
			/* Fewer than there are: bytes left over. */
			t = m;
			set16(&t, off, get16(t.b, off) - 1);
			assert_refused(&t, &q);
		}
	}
}

/* 256 records are walked, 257 are too many. */
static void test_filter_record_limit(void **state)
{
	struct dns_question q = simple_question("many.example", DNS_TYPE_TXT);
	struct seen s = { 0 };
	struct msg m;
	size_t len;

	(void)state;
	for (unsigned int count = 256; count <= 257; count++) {
		phdr(&m, 0x1234, DNS_F_QR, 1, count - 1, 0, 1);
		pquestion(&m, "many.example", DNS_TYPE_TXT, DNS_CLASS_IN);
		for (unsigned int i = 0; i < count - 1; i++)
			rr_raw(&m, "@12", DNS_TYPE_TXT, DNS_CLASS_IN, 60, "\x01x", 2);
		rr_opt(&m, 1232);
		if (count == 256)
			assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal,
							     record_pin, &s, &len),
					 0);
		else
			assert_refused(&m, &q);
	}
}

/* An answer with one CNAME record whose target is written as @target. */
static void cname_answer(struct msg *m, const char *target)
{
	phdr(m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
	pquestion(m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_name(m, "@12", DNS_TYPE_CNAME, 60, target);
}

static void test_filter_bad_pointers(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m;
	struct seen s = { 0 };
	size_t len, t;

	(void)state;
	/* The CNAME's target starts at 39: 12 + 11 + 4 + 2 + 10. */
	cname_answer(&m, "x@12");
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(m.n, 39 + 4);

	cname_answer(&m, "@39"); /* itself */
	assert_refused(&m, &q);
	cname_answer(&m, "x@39"); /* the start of its own run */
	assert_refused(&m, &q);
	cname_answer(&m, "x@41"); /* forwards */
	assert_refused(&m, &q);
	cname_answer(&m, "@16383"); /* far past the end */
	assert_refused(&m, &q);
	cname_answer(&m, "@11"); /* into the header */
	assert_refused(&m, &q);
	cname_answer(&m, "@0");
	assert_refused(&m, &q);
	/* A pointer cut in half. */
	cname_answer(&m, "@12");
	set16(&m, 37, 1);
	m.n--;
	assert_refused(&m, &q);

	/* A loop through two names: 39 -> 57 -> 39. The forward half is refused. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 2, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	t = rr_name(&m, "@12", DNS_TYPE_CNAME, 60, "b@57");
	assert_int_equal(t, 39);
	t = rr_name(&m, "x@39", DNS_TYPE_CNAME, 60, "y@39");
	assert_int_equal(t, 57);
	assert_refused(&m, &q);
	/* The same without the forward pointer is fine: x.b.a.example -> y.b.a.example. */
	m.b[39 + 2] = 0xc0;
	m.b[39 + 3] = 12;
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);

	/* Label lengths 64-255 in an answer's name, with that many bytes there. */
	for (unsigned int l = 64; l < 256; l++) {
		size_t at;

		phdr(&m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		at = rr_begin(&m, "@12", DNS_TYPE_CNAME, DNS_CLASS_IN, 60);
		p8(&m, l);
		for (unsigned int i = 0; i < (l < 192 ? l : 1); i++)
			p8(&m, 'a');
		p8(&m, 0);
		rr_end(&m, at);
		assert_refused(&m, &q);
	}
}

/* A name of more than 255 bytes, made of pieces joined by pointers. */
static void test_filter_long_name(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	char label[64];
	struct msg m;
	struct seen s = { 0 };
	size_t len, at, p1, p2, p3;

	(void)state;
	memset(label, 'x', 63);
	label[63] = '\0';
	for (int extra = 0; extra <= 1; extra++) {
		/* 4 labels of 63 bytes: 256 wire bytes, 1 too many; 3 + a short one fits. */
		phdr(&m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		at = rr_begin(&m, "@12", 65280, DNS_CLASS_IN, 60); /* opaque data, read by no one */
		p1 = pname(&m, label);
		p2 = pname(&m, F("%s@%zu", label, p1));
		p3 = pname(&m, F("%s@%zu", label, p2));
		rr_end(&m, at);
		set16(&m, 6, 2);
		rr_name(&m, "@12", DNS_TYPE_CNAME, 60, F("%s@%zu", extra ? label : "x", p3));
		if (extra) {
			assert_refused(&m, &q);
		} else {
			assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal,
							     record_pin, &s, &len),
					 0);
		}
	}
}

/* DNS_MAX_HOPS pointers for one name; one more is refused. */
static void test_filter_hops(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	for (unsigned int chain = DNS_MAX_HOPS - 1; chain <= DNS_MAX_HOPS; chain++) {
		size_t at, prev;

		phdr(&m, 0x1234, DNS_F_QR, 1, 2, 0, 0);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		at = rr_begin(&m, "@12", 65280, DNS_CLASS_IN, 60);
		prev = pname(&m, "z");
		for (unsigned int i = 0; i < chain; i++)
			prev = pname(&m, F("@%zu", prev));
		rr_end(&m, at);
		/* This name's own pointer is one hop, the chain the others. */
		rr_name(&m, "@12", DNS_TYPE_CNAME, 60, F("@%zu", prev));
		if (chain + 1 <= DNS_MAX_HOPS)
			assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal,
							     record_pin, &s, &len),
					 0);
		else
			assert_refused(&m, &q);
	}
}

static void test_filter_bad_rdata(void **state)
{
	struct dns_question q = simple_question("a.example", DNS_TYPE_A);
	struct msg m;
	size_t at;

	(void)state;
	/* A with 5 bytes, AAAA with 4, in the answer and in the additional section. */
	for (int sec = 0; sec < 2; sec++) {
		phdr(&m, 0x1234, DNS_F_QR, 1, sec ? 0 : 1, 0, sec ? 1 : 0);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		rr_raw(&m, "@12", DNS_TYPE_A, DNS_CLASS_IN, 60, "\1\2\3\4\5", 5);
		assert_refused(&m, &q);
		phdr(&m, 0x1234, DNS_F_QR, 1, sec ? 0 : 1, 0, sec ? 1 : 0);
		pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
		rr_raw(&m, "@12", DNS_TYPE_AAAA, DNS_CLASS_IN, 60, "\1\2\3\4", 4);
		assert_refused(&m, &q);
	}
	/* A CNAME with a byte after its name. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	at = rr_begin(&m, "@12", DNS_TYPE_CNAME, DNS_CLASS_IN, 60);
	pname(&m, "b@14");
	p8(&m, 0);
	rr_end(&m, at);
	assert_refused(&m, &q);
	/* A CNAME whose name runs past its RDATA (RDLENGTH too short). */
	cname_answer(&m, "b.example");
	set16(&m, 37, 3);
	assert_refused(&m, &q);
	/* MX without its name, SRV cut short. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "@12", DNS_TYPE_MX, DNS_CLASS_IN, 60, "\0\12", 2);
	assert_refused(&m, &q);
	phdr(&m, 0x1234, DNS_F_QR, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "@12", DNS_TYPE_SRV, DNS_CLASS_IN, 60, "\0\1\0\2\0", 5);
	assert_refused(&m, &q);
	/* Answer records of another class. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "@12", DNS_TYPE_TXT, 3, 60, "\1x", 2);
	assert_refused(&m, &q);
	/* OPT: in the answer, twice, or not owned by the root. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 1, 0, 0);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&m, 1232);
	assert_refused(&m, &q);
	phdr(&m, 0x1234, DNS_F_QR, 1, 0, 0, 2);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_opt(&m, 1232);
	rr_opt(&m, 1232);
	assert_refused(&m, &q);
	phdr(&m, 0x1234, DNS_F_QR, 1, 0, 0, 1);
	pquestion(&m, "a.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_raw(&m, "@12", DNS_TYPE_OPT, 1232, 0, NULL, 0);
	assert_refused(&m, &q);
	/* RDLENGTH past the end. */
	cname_answer(&m, "b.example");
	set16(&m, 37, 200);
	assert_refused(&m, &q);
}

/* Names in SOA, MX, SRV and NAPTR RDATA are read, and may be pointed at. */
static void test_filter_rdata_names(void **state)
{
	struct dns_question q = simple_question("svc.example", DNS_TYPE_A);
	struct msg m, want;
	struct seen s = { 0 };
	size_t len;

	(void)state;
	for (int cut = 0; cut <= 1; cut++) {
		struct msg *b = cut ? &want : &m;
		size_t at, mx, srv, naptr;

		phdr(b, 0x1234, DNS_F_QR, 1, cut ? 1 : 2, 0, 3);
		pquestion(b, "svc.example", DNS_TYPE_A, DNS_CLASS_IN);
		if (!cut)
			rr_a(b, "@12", 60, "192.168.0.1");
		rr_a(b, "@12", 60, "203.0.113.9");
		at = rr_begin(b, "@16", DNS_TYPE_MX, DNS_CLASS_IN, 60);
		p16(b, 10);
		mx = pname(b, "mail@16");
		rr_end(b, at);
		at = rr_begin(b, F("_x._tcp@%zu", mx), DNS_TYPE_SRV, DNS_CLASS_IN, 60);
		p16(b, 1);
		p16(b, 2);
		p16(b, 443);
		srv = pname(b, F("@%zu", mx));
		rr_end(b, at);
		at = rr_begin(b, F("@%zu", srv), 35, DNS_CLASS_IN, 60);
		p16(b, 1);
		p16(b, 2);
		pbytes(b, "\1s\7SIP+D2U\0", 11);
		naptr = pname(b, F("_sip._udp@%zu", mx));
		(void)naptr;
		rr_end(b, at);
	}
	assert_int_equal(dns_filter_response(m.b, m.n, &q, drop_internal, record_pin, &s, &len), 0);
	assert_int_equal(len, want.n);
	assert_memory_equal(m.b, want.b, want.n);
}

/*
 * Kept names that borrow bytes from a record that goes, or from bytes msb
 * does not read as names, cannot be rewritten: the answer is refused. The
 * same answers pass untouched when nothing has to go.
 */
static void test_filter_cut_clash(void **state)
{
	struct dns_question q = simple_question("www.example", DNS_TYPE_A);
	struct msg m;
	struct seen s = { 0 };
	size_t len, owner, at, blob;

	(void)state;
	/* The A record names cdn.example first; the CNAME then points at it. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 3, 0, 0);
	pquestion(&m, "www.example", DNS_TYPE_A, DNS_CLASS_IN);
	owner = m.n;
	rr_a(&m, "cdn@16", 60, "10.0.0.1");
	rr_a(&m, F("@%zu", owner), 60, "203.0.113.1");
	rr_name(&m, "@12", DNS_TYPE_CNAME, 60, F("@%zu", owner));
	assert_refused(&m, &q);
	assert_int_equal(dns_filter_response(m.b, m.n, &q, NULL, record_pin, &s, &len), 0);
	assert_int_equal(len, m.n);
	assert_int_equal(s.npins, 2); /* under www.example only */

	/* A kept name pointing into opaque RDATA, when something is cut. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 3, 0, 0);
	pquestion(&m, "www.example", DNS_TYPE_A, DNS_CLASS_IN);
	at = rr_begin(&m, "@12", 65280, DNS_CLASS_IN, 60);
	blob = pname(&m, "cdn@16");
	rr_end(&m, at);
	rr_a(&m, "@12", 60, "10.0.0.1");
	rr_raw(&m, F("@%zu", blob), DNS_TYPE_TXT, DNS_CLASS_IN, 60, "\1x", 2);
	assert_refused(&m, &q);
	/* The same from a name in RDATA (an NS record in the authority section). */
	set16(&m, 6, 2);
	set16(&m, 8, 1);
	m.n -= 2 + 10 + 2;
	rr_name(&m, "@16", DNS_TYPE_NS, 60, F("@%zu", blob));
	assert_refused(&m, &q);
	memset(&s, 0, sizeof(s));
	assert_int_equal(dns_filter_response(m.b, m.n, &q, NULL, record_pin, &s, &len), 0);
	assert_int_equal(len, m.n);
	assert_int_equal(s.npins, 1);

	/* A pointer into the middle of a kept label is not a label boundary. */
	phdr(&m, 0x1234, DNS_F_QR, 1, 3, 0, 0);
	pquestion(&m, "www.example", DNS_TYPE_A, DNS_CLASS_IN);
	rr_a(&m, "@12", 60, "10.0.0.1");
	at = rr_begin(&m, "@12", DNS_TYPE_PTR, DNS_CLASS_IN, 60);
	owner = m.n;
	pbytes(&m, "\3x\1y\0", 5); /* the label "x\1y": from its third byte it reads "y" */
	rr_end(&m, at);
	rr_raw(&m, F("@%zu", owner + 2), DNS_TYPE_TXT, DNS_CLASS_IN, 60, "\1x", 2);
	assert_refused(&m, &q);
	assert_int_equal(dns_filter_response(m.b, m.n, &q, NULL, NULL, NULL, &len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_basic),
		cmocka_unit_test(test_query_root_and_chars),
		cmocka_unit_test(test_query_bad_chars),
		cmocka_unit_test(test_query_label_lengths),
		cmocka_unit_test(test_query_name_length),
		cmocka_unit_test(test_query_header),
		cmocka_unit_test(test_query_types_and_classes),
		cmocka_unit_test(test_query_edns),
		cmocka_unit_test(test_query_rebuilt_for_upstream),
		cmocka_unit_test(test_query_truncations),
		cmocka_unit_test(test_reply_nxdomain),
		cmocka_unit_test(test_reply_edns),
		cmocka_unit_test(test_reply_limits),
		cmocka_unit_test(test_reply_formerr),
		cmocka_unit_test(test_tcp_frame),
		cmocka_unit_test(test_filter_public),
		cmocka_unit_test(test_filter_aaaa),
		cmocka_unit_test(test_filter_all_private),
		cmocka_unit_test(test_filter_no_addresses),
		cmocka_unit_test(test_filter_chain_rewrite),
		cmocka_unit_test(test_filter_chain_order_and_strays),
		cmocka_unit_test(test_filter_odd_owner),
		cmocka_unit_test(test_filter_0x20_and_ttl),
		cmocka_unit_test(test_filter_not_the_answer),
		cmocka_unit_test(test_filter_truncations),
		cmocka_unit_test(test_filter_counts),
		cmocka_unit_test(test_filter_record_limit),
		cmocka_unit_test(test_filter_bad_pointers),
		cmocka_unit_test(test_filter_long_name),
		cmocka_unit_test(test_filter_hops),
		cmocka_unit_test(test_filter_bad_rdata),
		cmocka_unit_test(test_filter_rdata_names),
		cmocka_unit_test(test_filter_cut_clash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
