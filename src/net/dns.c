// SPDX-License-Identifier: Apache-2.0
/*
 * DNS messages: the guest's queries checked, msb's own answers built, and
 * upstream answers checked and filtered before the guest sees them.
 *
 * DOC: Theory of Operation
 * Both ends are hostile: the guest writes the queries and whoever controls a
 * zone writes the answers. Every byte is read through a cursor that refuses
 * to step past its end, every count is checked against what is really there,
 * and a message with bytes left over after its last record is refused.
 *
 * Queries are held to what a stub resolver sends: QR clear, OPCODE 0
 * (QUERY), TC clear, exactly one question, no answer or authority records,
 * and in the additional section at most one EDNS OPT record (version 0; its
 * payload size is the guest's UDP limit). The question's name may not use
 * compression (nothing precedes it to point at) and must be made of host-name
 * bytes: letters, digits, '-' and '_' (for SRV and DKIM-style labels). Every
 * other byte is refused, '*' included: a query for a literal "*" label only
 * ever matches a wildcard's own owner, which no application asks for, and a
 * name that could read as a pattern has no business in front of a policy
 * where "*." means "any subdomain" or in a log line. Dots inside labels,
 * spaces, controls and bytes >= 0x80 (IDNs travel as punycode) go the same
 * way, so the name msb matches, pins and logs is exactly the name resolved.
 * The name is kept lowercase without the trailing dot. Class IN only; zone
 * transfers and the other meta types but ANY are not served.
 *
 * Names in answers are decompressed under three rules: a pointer never
 * points into the header, it points strictly before the run of labels that
 * holds it (so every hop goes backwards and loops are impossible), and at
 * most DNS_MAX_HOPS pointers and DNS_MAX_NAME_WIRE bytes make up one name.
 * Labels of the 0x40 and 0x80 kinds (extended, obsolete) are refused.
 *
 * An answer must carry the query's id, QR set, OPCODE 0 and the same single
 * question (the name compared case-insensitively: resolvers that randomise
 * the case of the name, DNS 0x20, echo it back changed). Its records, in all
 * three sections and at most DNS_MAX_RECORDS of them, are walked; in the
 * types whose names may be compressed (RFC 1035 3.3 and the list of RFC 3597
 * section 4) the names are decompressed and the RDATA must hold exactly
 * them, A and AAAA must have 4 and 16 bytes, the answer section is class IN
 * only and the OPT record appears once at most, in the additional section.
 *
 * The question's CNAME chain is followed in the answer section (in any
 * order; a loop ends it). An A/AAAA record the chain does not lead to is
 * removed: it answers nothing the guest asked, and pinning it would let any
 * zone bind any name to any address. One the caller's drop() refuses
 * (private, loopback, link-local with rebind protection) is removed. Every
 * one kept is pinned under the question's name only, with the smallest TTL on
 * the way to it; never under a CNAME's target, which the answering zone
 * chose (`evil.test CNAME good.test` + `good.test A x` must not make a rule
 * for good.test allow x). Nothing is pinned until the whole message proved
 * valid.
 *
 * Removing is done in place: the removed records' bytes are cut out and the
 * ones after move down. That would break compression pointers aimed at or
 * beyond a cut, so before anything is changed every name that stays is
 * walked again and each of its pointers must aim at a label boundary of an
 * earlier name that stays (the question or a kept record's owner or RDATA
 * name): exactly what compressors write. Pointers are then shifted by the
 * bytes cut before their targets, and ANCOUNT is rewritten. A message whose
 * kept names borrow bytes from a removed record, or from data msb does not
 * read as names, is refused (-EBADMSG) and the caller answers SERVFAIL: it
 * fails closed. Cutting instead of rebuilding keeps the upstream's bytes
 * untouched elsewhere, never makes the message longer (so it still fits the
 * size the guest asked for) and needs no allocation.
 */
#include "net/dns.h"

#include <errno.h>
#include <string.h>

#include "net/addr.h"
#include "util/rd.h"

#define DNS_EDNS_SIZE 1232 /* the payload size msb's own OPT records advertise */
#define DNS_OPT_LEN   11   /* root name, type, class, TTL, empty RDATA */

static uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);

	return p ? p[0] : 0;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);

	return p ? get_be16(p) : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);

	return p ? (uint32_t)get_be16(p) << 16 | get_be16(p + 2) : 0;
}

static bool rd_done(const struct rd *r)
{
	return !r->bad && r->off == r->n;
}

static unsigned int opcode(uint16_t flags)
{
	return (flags >> 11) & 0xf;
}

/* --- names ------------------------------------------------------------ */

/* A name as it goes on the wire, uncompressed, ASCII letters lowercased. */
struct dname {
	uint8_t w[DNS_MAX_NAME_WIRE];
	size_t len;
};

#define NAME_NOPTR 1u /* compression is not allowed (the query's question) */

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
}

/*
 * name_read() - decompress the name at @r's cursor into @d (may be NULL).
 * @r: its buffer is the whole message; the name's own bytes, up to its
 *	terminator or first pointer, must end before @r->n (the end of the
 *	RDATA that holds it, or of the message). The cursor moves past them.
 * @msg_n: the message's length, the bound for labels reached by pointers.
 * @flags: NAME_NOPTR to refuse compression.
 * Return: 0, or -EBADMSG (the cursor is then marked bad).
 */
static int name_read(struct rd *r, size_t msg_n, struct dname *d, unsigned int flags)
{
	const uint8_t *m = r->p;
	size_t pos = r->off, run = pos, limit = r->n, resume = 0, len = 0;
	unsigned int hops = 0;

	if (r->bad)
		return -EBADMSG;
	for (;;) {
		uint8_t l;

		if (pos >= limit)
			goto bad;
		l = m[pos];
		if ((l & 0xc0) == 0xc0) {
			size_t t;

			if ((flags & NAME_NOPTR) || limit - pos < 2)
				goto bad;
			t = (size_t)(l & 0x3f) << 8 | m[pos + 1];
			/* Backwards only, out of the header, a bounded number of times. */
			if (t < DNS_HDR_SIZE || t >= run || ++hops > DNS_MAX_HOPS)
				goto bad;
			if (!resume)
				resume = pos + 2;
			pos = run = t;
			limit = msg_n;
			continue;
		}
		if (l & 0xc0) /* 0x40 extended and 0x80 reserved label kinds */
			goto bad;
		if (l == 0) {
			if (d)
				d->w[len] = 0;
			len++;
			if (!resume)
				resume = pos + 1;
			break;
		}
		/* The label, and room left for the root label after it. */
		if (limit - pos - 1 < l || len + 1 + l + 1 > DNS_MAX_NAME_WIRE)
			goto bad;
		if (d) {
			d->w[len] = l;
			for (size_t i = 1; i <= l; i++)
				d->w[len + i] = lower(m[pos + i]);
		}
		len += 1 + (size_t)l;
		pos += 1 + (size_t)l;
	}
	if (d)
		d->len = len;
	r->off = resume;
	return 0;
bad:
	r->bad = true;
	return -EBADMSG;
}

static bool host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * name_text() - @d as text, "a.b" ("" for the root), into @out
 * (DNS_MAX_NAME_TEXT + 1 bytes: a wire name of 255 bytes is 253 of text).
 * Return: false when a byte is not a host-name character.
 */
static bool name_text(const struct dname *d, char *out)
{
	size_t i = 0, o = 0;

	while (i < d->len && d->w[i]) {
		uint8_t l = d->w[i++];

		if (o)
			out[o++] = '.';
		for (uint8_t k = 0; k < l; k++, i++) {
			if (i >= d->len || !host_char(d->w[i]))
				return false;
			out[o++] = (char)d->w[i];
		}
	}
	out[o] = '\0';
	return true;
}

/* text_name() - the inverse, for a name from struct dns_question. Return: 0 or -EINVAL. */
static int text_name(const char *s, size_t cap, struct dname *d)
{
	size_t n = strnlen(s, cap), len = 0, i = 0;

	if (n == cap || n > DNS_MAX_NAME_TEXT)
		return -EINVAL;
	while (i < n) {
		size_t l = 0;

		while (i + l < n && s[i + l] != '.')
			l++;
		if (l == 0 || l > DNS_MAX_LABEL)
			return -EINVAL;
		d->w[len++] = (uint8_t)l;
		for (size_t k = 0; k < l; k++) {
			if (!host_char((uint8_t)s[i + k]))
				return -EINVAL;
			d->w[len++] = (uint8_t)s[i + k];
		}
		i += l;
		if (i < n && ++i == n) /* a trailing dot */
			return -EINVAL;
	}
	d->w[len++] = 0;
	d->len = len;
	return 0;
}

static uint32_t name_hash(const struct dname *d)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < d->len; i++)
		h = (h ^ d->w[i]) * 16777619u;
	return h;
}

static bool name_eq(const struct dname *a, const struct dname *b)
{
	return a->len == b->len && !memcmp(a->w, b->w, a->len);
}

/* The name at @off of @p (already proven valid), decompressed. */
static void name_at(const uint8_t *p, size_t n, size_t off, struct dname *d)
{
	struct rd r = { .p = p, .n = n, .off = off };

	if (name_read(&r, n, d, 0) < 0)
		d->len = 0; /* cannot happen: every name was read once before */
}

/* --- queries and msb's replies ---------------------------------------- */

/* The EDNS OPT record of a query (RFC 6891 6.1.2), the cursor at its owner name. */
static int query_opt(struct rd *r, size_t n, struct dns_question *q, bool *badvers)
{
	struct dname root;
	uint16_t type, size, rdlen;
	uint32_t ttl;
	struct rd opts;

	if (name_read(r, n, &root, NAME_NOPTR) < 0 || root.len != 1)
		return -EBADMSG;
	type = rd_u16(r);
	size = rd_u16(r);
	ttl = rd_u32(r);
	rdlen = rd_u16(r);
	opts = (struct rd){ .p = r->p, .n = r->off + rdlen, .off = r->off };
	if (r->bad || type != DNS_TYPE_OPT || !rd_take(r, rdlen))
		return -EBADMSG;
	/* Options: code, length, data, filling the RDATA exactly. */
	while (!opts.bad && opts.off < opts.n) {
		rd_u16(&opts);
		rd_take(&opts, rd_u16(&opts));
	}
	if (!rd_done(&opts))
		return -EBADMSG;
	*badvers = ((ttl >> 16) & 0xff) != 0;
	q->edns = true;
	q->dnssec_ok = (ttl & 0x8000u) != 0;
	q->udp_size = size < DNS_UDP_MIN ? DNS_UDP_MIN : size;
	return 0;
}

/* Question types msb serves: all data types and ANY; no zone transfers, TSIG/TKEY, MAILA/B. */
static bool qtype_served(uint16_t t)
{
	return t < 128 || t == DNS_TYPE_ANY || t > 255;
}

int dns_parse_query(const uint8_t *p, size_t n, struct dns_question *q)
{
	struct rd r = { .p = p, .n = n };
	struct dname d;
	uint16_t qd, an, ns, ar;
	bool badvers = false;

	memset(q, 0, sizeof(*q));
	q->udp_size = DNS_UDP_MIN;
	if (n < DNS_HDR_SIZE || n > DNS_MAX_MSG)
		return -EBADMSG;
	q->id = rd_u16(&r);
	q->flags = rd_u16(&r);
	qd = rd_u16(&r);
	an = rd_u16(&r);
	ns = rd_u16(&r);
	ar = rd_u16(&r);
	if (q->flags & (DNS_F_QR | DNS_F_TC))
		return -EBADMSG;
	if (opcode(q->flags) != 0)
		return -EPROTONOSUPPORT;
	if (qd != 1 || an || ns || ar > 1)
		return -EBADMSG;

	q->qoff = r.off;
	if (name_read(&r, n, &d, NAME_NOPTR) < 0)
		goto bad;
	q->qtype = rd_u16(&r);
	q->qclass = rd_u16(&r);
	if (r.bad || !name_text(&d, q->name) || q->qtype == 0 || q->qtype == DNS_TYPE_OPT)
		goto bad;
	q->qlen = r.off - q->qoff;
	if (ar && query_opt(&r, n, q, &badvers) < 0)
		goto bad;
	if (!rd_done(&r))
		goto bad;
	if (badvers) {
		q->edns = false; /* no OPT in the reply: msb speaks version 0 only */
		q->udp_size = DNS_UDP_MIN;
		return -EPROTONOSUPPORT;
	}
	if (q->qclass != DNS_CLASS_IN || !qtype_served(q->qtype))
		return -EPROTONOSUPPORT;
	return 0;
bad:
	q->qoff = q->qlen = 0;
	q->edns = false;
	q->dnssec_ok = false;
	q->udp_size = DNS_UDP_MIN;
	q->name[0] = '\0';
	return -EBADMSG;
}

/* Does @q's question lie inside @query (@qlen bytes)? */
static bool question_fits(const uint8_t *query, size_t qlen, const struct dns_question *q)
{
	return query && q->qoff >= DNS_HDR_SIZE && q->qoff <= qlen && q->qlen <= qlen - q->qoff &&
	       q->qlen <= DNS_MAX_NAME_WIRE + 4;
}

/* An OPT record at @o: payload size @size, version 0, DO if @dnssec_ok, no options. */
static void put_opt(uint8_t *o, uint16_t size, bool dnssec_ok)
{
	o[0] = 0; /* the root */
	put_be16(o + 1, DNS_TYPE_OPT);
	put_be16(o + 3, size);
	o[5] = 0; /* extended RCODE */
	o[6] = 0; /* version */
	put_be16(o + 7, dnssec_ok ? 0x8000u : 0);
	put_be16(o + 9, 0); /* RDATA: none */
}

size_t dns_build_query(const uint8_t *query, size_t qlen, const struct dns_question *q, uint16_t id,
		       uint8_t *out, size_t cap)
{
	size_t len;

	if (!q->qlen || !question_fits(query, qlen, q))
		return 0;
	len = DNS_HDR_SIZE + q->qlen + (q->edns ? DNS_OPT_LEN : 0);
	if (!out || cap < len)
		return 0;
	put_be16(out, id);
	put_be16(out + 2, (uint16_t)(q->flags & (DNS_F_RD | DNS_F_CD)));
	put_be16(out + 4, 1);
	put_be16(out + 6, 0);
	put_be16(out + 8, 0);
	put_be16(out + 10, q->edns ? 1 : 0);
	memcpy(out + DNS_HDR_SIZE, query + q->qoff, q->qlen);
	if (q->edns)
		put_opt(out + DNS_HDR_SIZE + q->qlen,
			q->udp_size > DNS_UDP_MAX_UP ? DNS_UDP_MAX_UP : q->udp_size, q->dnssec_ok);
	return len;
}

size_t dns_build_reply(const uint8_t *query, size_t qlen, const struct dns_question *q, int rcode,
		       uint8_t *out, size_t cap)
{
	size_t len;
	uint16_t flags;

	if (rcode < 0 || rcode > 15)
		return 0;
	if (q->qlen && !question_fits(query, qlen, q))
		return 0;
	len = DNS_HDR_SIZE + q->qlen + (q->edns ? DNS_OPT_LEN : 0);
	if (!out || cap < len)
		return 0;
	flags = (uint16_t)(DNS_F_QR | (q->flags & (DNS_F_RD | DNS_F_CD)) | DNS_F_RA | rcode);
	put_be16(out, q->id);
	put_be16(out + 2, flags);
	put_be16(out + 4, q->qlen ? 1 : 0);
	put_be16(out + 6, 0);
	put_be16(out + 8, 0);
	put_be16(out + 10, q->edns ? 1 : 0);
	if (q->qlen)
		memcpy(out + DNS_HDR_SIZE, query + q->qoff, q->qlen);
	if (q->edns)
		put_opt(out + DNS_HDR_SIZE + q->qlen, DNS_EDNS_SIZE, false);
	return len;
}

int dns_tcp_frame(const uint8_t *p, size_t n, size_t *msg_len)
{
	size_t len;

	if (n < 2)
		return 0;
	len = get_be16(p);
	if (len < DNS_HDR_SIZE)
		return -EBADMSG;
	if (n - 2 < len)
		return 0;
	*msg_len = len;
	return 1;
}

/* --- answers ----------------------------------------------------------- */

enum section { SEC_ANSWER, SEC_AUTHORITY, SEC_ADDITIONAL };
enum fate { KEEP, CUT_DROP, CUT_STRAY };

/* One resource record of an answer, as pass 1 found it. */
struct rr {
	uint32_t start, end; /* the record's bytes */
	uint32_t owner;	     /* offset of its name */
	uint32_t rdata;
	uint16_t rdlen, type, cls;
	uint32_t ttl;
	uint32_t hash;		/* of the owner's name */
	uint32_t target, thash; /* CNAME (answer section): the target name */
	uint8_t section, fate;
	uint16_t link; /* KEEP address record: its place in the chain */
};

/* A name of the CNAME chain: where to read it, and the smallest TTL on the way there. */
struct link {
	uint32_t off, hash, ttl;
};

/* Pass 2: label boundaries of the names that stay, and the pointers to shift. */
struct keep_map {
	uint64_t bound[(DNS_MAX_MSG + 64) / 64];
	uint16_t fix[3 * DNS_MAX_RECORDS + 1];
	size_t nfix;
};

struct filter {
	struct rr rr[DNS_MAX_RECORDS];
	size_t nrr;
	struct link chain[DNS_MAX_RECORDS + 1];
	size_t nchain;
	uint32_t cut_start[DNS_MAX_RECORDS], cut_end[DNS_MAX_RECORDS];
	uint32_t cut_before[DNS_MAX_RECORDS + 1]; /* bytes cut before cut i */
	size_t ncut;
	struct keep_map km;
};

/*
 * Where the names sit in RDATA, for the types whose names a compressor may
 * have compressed or used as targets: n a name, h 16 bits, l 32 bits,
 * s a <character-string>. Return: NULL for RDATA without such names.
 */
static const char *rdata_layout(uint16_t type)
{
	switch (type) {
	case DNS_TYPE_NS:
	case 3: /* MD */
	case 4: /* MF */
	case DNS_TYPE_CNAME:
	case 7: /* MB */
	case 8: /* MG */
	case 9: /* MR */
	case DNS_TYPE_PTR:
	case 39: /* DNAME */
		return "n";
	case DNS_TYPE_SOA:
		return "nnlllll";
	case 14: /* MINFO */
	case 17: /* RP */
		return "nn";
	case DNS_TYPE_MX:
	case 18: /* AFSDB */
	case 21: /* RT */
	case 36: /* KX */
		return "hn";
	case 26: /* PX */
		return "hnn";
	case DNS_TYPE_SRV:
		return "hhhn";
	case 35: /* NAPTR */
		return "hhsssn";
	default:
		return NULL;
	}
}

static bool bit_test(const uint64_t *m, size_t i)
{
	return m[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *m, size_t i)
{
	m[i / 64] |= (uint64_t)1 << (i % 64);
}

/*
 * keep_name() - pass 2 for a name that stays, at @off of @p (valid since
 * pass 1): mark its label boundaries; its pointer, if any, must aim at a
 * boundary of an earlier name that stays. Return: 0 or -EBADMSG.
 */
static int keep_name(struct keep_map *km, const uint8_t *p, size_t n, size_t off, size_t *next)
{
	for (size_t pos = off; pos < n;) {
		uint8_t l = p[pos];

		bit_set(km->bound, pos);
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= n ||
			    !bit_test(km->bound, (size_t)(l & 0x3f) << 8 | p[pos + 1]))
				return -EBADMSG;
			km->fix[km->nfix++] = (uint16_t)pos;
			*next = pos + 2;
			return 0;
		}
		if (l == 0) {
			*next = pos + 1;
			return 0;
		}
		pos += 1 + (size_t)l;
	}
	return -EBADMSG;
}

/*
 * rdata_names() - walk the names of @rr's RDATA by its type's layout.
 * Pass 1 (@km NULL): check them and that they fill the RDATA exactly; the
 * first one is decompressed into @first. Pass 2: keep_name() on each.
 * Return: 0 or -EBADMSG.
 */
static int rdata_names(const uint8_t *p, size_t n, const struct rr *rr, struct keep_map *km,
		       struct dname *first)
{
	const char *layout = rdata_layout(rr->type);
	struct rd r = { .p = p, .n = rr->rdata + rr->rdlen, .off = rr->rdata };
	bool named = false;

	if (!layout)
		return 0;
	for (; *layout; layout++) {
		switch (*layout) {
		case 'n':
			if (km) {
				if (keep_name(km, p, r.n, r.off, &r.off) < 0)
					return -EBADMSG;
			} else if (name_read(&r, n, named ? NULL : first, 0) < 0) {
				return -EBADMSG;
			}
			named = true;
			break;
		case 'h':
			rd_take(&r, 2);
			break;
		case 'l':
			rd_take(&r, 4);
			break;
		default: /* 's' */
			rd_take(&r, rd_u8(&r));
			break;
		}
	}
	return rd_done(&r) ? 0 : -EBADMSG;
}

/* Pass 1 for one record at @r's cursor. Return: 0 or -EBADMSG. */
static int read_rr(struct rd *r, enum section sec, struct rr *rr, bool *seen_opt)
{
	struct dname d;

	memset(rr, 0, sizeof(*rr));
	rr->start = rr->owner = (uint32_t)r->off;
	rr->section = (uint8_t)sec;
	if (name_read(r, r->n, &d, 0) < 0)
		return -EBADMSG;
	rr->hash = name_hash(&d);
	rr->type = rd_u16(r);
	rr->cls = rd_u16(r);
	rr->ttl = rd_u32(r);
	rr->rdlen = rd_u16(r);
	rr->rdata = (uint32_t)r->off;
	if (!rd_take(r, rr->rdlen))
		return -EBADMSG;
	rr->end = (uint32_t)r->off;

	if (rr->type == DNS_TYPE_OPT) {
		if (sec != SEC_ADDITIONAL || *seen_opt || d.len != 1)
			return -EBADMSG;
		*seen_opt = true;
		return 0;
	}
	if (sec == SEC_ANSWER && rr->cls != DNS_CLASS_IN)
		return -EBADMSG;
	if (rr->cls == DNS_CLASS_IN && ((rr->type == DNS_TYPE_A && rr->rdlen != 4) ||
					(rr->type == DNS_TYPE_AAAA && rr->rdlen != 16)))
		return -EBADMSG;
	if (rdata_names(r->p, r->n, rr, NULL, &d) < 0)
		return -EBADMSG;
	if (rr->type == DNS_TYPE_CNAME) {
		rr->target = rr->rdata;
		rr->thash = name_hash(&d);
	}
	return 0;
}

/* The chain's index of the name at @off (hash @h), or -1. */
static int chain_find(const struct filter *f, const uint8_t *p, size_t n, size_t off, uint32_t h)
{
	struct dname a, b;
	bool have = false;

	for (size_t i = 0; i < f->nchain; i++) {
		if (f->chain[i].hash != h)
			continue;
		if (!have) {
			name_at(p, n, off, &a);
			have = true;
		}
		name_at(p, n, f->chain[i].off, &b);
		if (name_eq(&a, &b))
			return (int)i;
	}
	return -1;
}

/* Follow CNAMEs from the question (chain[0]) through the answer section. */
static void follow_chain(struct filter *f, const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < f->nchain; k++) {
		for (size_t i = 0; i < f->nrr && f->nchain < DNS_MAX_RECORDS + 1; i++) {
			const struct rr *rr = &f->rr[i];
			uint32_t ttl;

			if (rr->section != SEC_ANSWER || rr->type != DNS_TYPE_CNAME ||
			    rr->hash != f->chain[k].hash)
				continue;
			if (chain_find(f, p, n, rr->owner, rr->hash) != (int)k)
				continue;
			if (chain_find(f, p, n, rr->target, rr->thash) >= 0)
				continue;			   /* already on it: a loop */
			ttl = rr->ttl & 0x80000000u ? 0 : rr->ttl; /* RFC 2181 8 */
			f->chain[f->nchain++] = (struct link){
				.off = rr->target,
				.hash = rr->thash,
				.ttl = ttl < f->chain[k].ttl ? ttl : f->chain[k].ttl,
			};
		}
	}
}

static struct ipaddr rr_addr(const uint8_t *p, const struct rr *rr)
{
	return rr->type == DNS_TYPE_A ? ip_from4_bytes(p + rr->rdata) : ip_from6(p + rr->rdata);
}

static bool is_addr(const struct rr *rr)
{
	return rr->cls == DNS_CLASS_IN && (rr->type == DNS_TYPE_A || rr->type == DNS_TYPE_AAAA);
}

/* Bytes cut before offset @t, which is in no cut. */
static uint32_t cut_shift(const struct filter *f, uint32_t t)
{
	size_t lo = 0, hi = f->ncut;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->cut_start[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return f->cut_before[lo];
}

/* Pass 2: every name that stays must only point at names that stay. */
static int check_cuts(struct filter *f, const uint8_t *p, size_t n)
{
	struct keep_map *km = &f->km;
	size_t next;

	memset(km->bound, 0, sizeof(km->bound));
	km->nfix = 0;
	if (keep_name(km, p, n, DNS_HDR_SIZE, &next) < 0) /* the question */
		return -EBADMSG;
	for (size_t i = 0; i < f->nrr; i++) {
		const struct rr *rr = &f->rr[i];

		if (rr->fate != KEEP)
			continue;
		if (keep_name(km, p, n, rr->owner, &next) < 0 ||
		    rdata_names(p, n, rr, km, NULL) < 0)
			return -EBADMSG;
	}
	return 0;
}

/* Cut the records marked so, shifting the pointers pass 2 found. Return: the new length. */
static size_t apply_cuts(struct filter *f, uint8_t *p, size_t n)
{
	size_t out;

	for (size_t i = 0; i < f->km.nfix; i++) {
		uint8_t *x = p + f->km.fix[i];
		uint32_t t = (uint32_t)(x[0] & 0x3f) << 8 | x[1];

		put_be16(x, (uint16_t)(0xc000 | (t - cut_shift(f, t))));
	}
	out = f->cut_start[0];
	for (size_t i = 0; i < f->ncut; i++) {
		size_t from = f->cut_end[i], to = i + 1 < f->ncut ? f->cut_start[i + 1] : n;

		memmove(p + out, p + from, to - from);
		out += to - from;
	}
	return out;
}

static void pin_records(const struct filter *f, const uint8_t *p, const struct dns_question *q,
			void (*pin)(const char *name, const struct ipaddr *ip, uint32_t ttl,
				    void *ctx),
			void *ctx)
{
	for (size_t i = 0; i < f->nrr; i++) {
		const struct rr *rr = &f->rr[i];
		struct ipaddr ip;
		uint32_t ttl, path;

		if (rr->section != SEC_ANSWER || !is_addr(rr) || rr->fate != KEEP)
			continue;
		ip = rr_addr(p, rr);
		ttl = rr->ttl & 0x80000000u ? 0 : rr->ttl;
		path = f->chain[rr->link].ttl;
		pin(q->name, &ip, ttl < path ? ttl : path, ctx);
	}
}

int dns_filter_response(uint8_t *p, size_t n, const struct dns_question *q,
			bool (*drop)(const struct ipaddr *ip, void *ctx),
			void (*pin)(const char *name, const struct ipaddr *ip, uint32_t ttl,
				    void *ctx),
			void *ctx, size_t *out_len)
{
	struct filter f;
	struct rd r = { .p = p, .n = n };
	struct dname qn, d;
	uint16_t id, flags, qd, count[3], qtype, qclass;
	size_t total, dropped = 0, kept = 0;
	bool seen_opt = false;

	if (text_name(q->name, sizeof(q->name), &qn) < 0)
		return -EINVAL;
	if (n < DNS_HDR_SIZE || n > DNS_MAX_MSG)
		return -EBADMSG;
	id = rd_u16(&r);
	flags = rd_u16(&r);
	qd = rd_u16(&r);
	for (int s = 0; s < 3; s++)
		count[s] = rd_u16(&r);
	if (id != q->id || !(flags & DNS_F_QR) || opcode(flags) != 0 || qd != 1)
		return -EBADMSG;
	total = (size_t)count[0] + count[1] + count[2];
	if (total > DNS_MAX_RECORDS)
		return -EBADMSG;

	if (name_read(&r, n, &d, 0) < 0)
		return -EBADMSG;
	qtype = rd_u16(&r);
	qclass = rd_u16(&r);
	if (r.bad || !name_eq(&d, &qn) || qtype != q->qtype || qclass != q->qclass)
		return -EBADMSG;

	f.nrr = 0;
	for (int s = 0; s < 3; s++)
		for (uint16_t i = 0; i < count[s]; i++)
			if (read_rr(&r, (enum section)s, &f.rr[f.nrr++], &seen_opt) < 0)
				return -EBADMSG;
	if (!rd_done(&r))
		return -EBADMSG;

	f.chain[0] =
		(struct link){ .off = DNS_HDR_SIZE, .hash = name_hash(&qn), .ttl = UINT32_MAX };
	f.nchain = 1;
	follow_chain(&f, p, n);

	f.ncut = 0;
	f.cut_before[0] = 0;
	for (size_t i = 0; i < f.nrr; i++) {
		struct rr *rr = &f.rr[i];
		int link;

		if (rr->section != SEC_ANSWER || !is_addr(rr))
			continue;
		link = chain_find(&f, p, n, rr->owner, rr->hash);
		if (link < 0) {
			rr->fate = CUT_STRAY;
		} else {
			struct ipaddr ip = rr_addr(p, rr);

			rr->link = (uint16_t)link;
			rr->fate = drop && drop(&ip, ctx) ? CUT_DROP : KEEP;
		}
		if (rr->fate == KEEP) {
			kept++;
			continue;
		}
		dropped += rr->fate == CUT_DROP;
		f.cut_start[f.ncut] = rr->start;
		f.cut_end[f.ncut] = rr->end;
		f.cut_before[f.ncut + 1] = f.cut_before[f.ncut] + rr->end - rr->start;
		f.ncut++;
	}

	if (f.ncut && check_cuts(&f, p, n) < 0)
		return -EBADMSG;
	/* Valid from here on: nothing below fails. */
	if (pin)
		pin_records(&f, p, q, pin, ctx);
	*out_len = n;
	if (f.ncut) {
		*out_len = apply_cuts(&f, p, n);
		put_be16(p + 6, (uint16_t)(count[0] - f.ncut));
	}
	return dropped && !kept ? 1 : 0;
}
