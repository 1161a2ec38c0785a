/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS messages between the guest and msb's resolver: parsing the guest's
 * queries, building msb's own answers, and filtering upstream answers before
 * the guest sees them. Pure functions over untrusted bytes; dns.c says why
 * each rule is what it is.
 */
#ifndef MSB_NET_DNS_H
#define MSB_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ipaddr; /* net/addr.h */

/* Limits: anything larger is refused (-EBADMSG). */
#define DNS_HDR_SIZE	  12
#define DNS_MAX_MSG	  65535 /* the TCP length prefix is 16 bits */
#define DNS_MAX_NAME_WIRE 255	/* RFC 1035 2.3.4, labels and their length bytes */
#define DNS_MAX_NAME_TEXT 253	/* "a.b.c" without the trailing dot */
#define DNS_MAX_LABEL	  63
#define DNS_MAX_RECORDS	  256  /* resource records in all sections of an answer */
#define DNS_MAX_HOPS	  127  /* compression pointers followed for one name */
#define DNS_UDP_MIN	  512  /* what every client accepts over UDP (RFC 1035) */
#define DNS_UDP_MAX_UP	  4096 /* the largest UDP answer msb asks a nameserver for */

/* RCODEs msb answers with (dns_build_reply()). */
#define DNS_RCODE_NOERROR  0
#define DNS_RCODE_FORMERR  1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP   4
#define DNS_RCODE_REFUSED  5

/* Record types the code looks at. */
#define DNS_TYPE_A     1
#define DNS_TYPE_NS    2
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA   6
#define DNS_TYPE_PTR   12
#define DNS_TYPE_MX    15
#define DNS_TYPE_TXT   16
#define DNS_TYPE_AAAA  28
#define DNS_TYPE_SRV   33
#define DNS_TYPE_OPT   41
#define DNS_TYPE_ANY   255
#define DNS_CLASS_IN   1

/* Header flag bits (the 16 bits after the id). */
#define DNS_F_QR 0x8000u
#define DNS_F_AA 0x0400u
#define DNS_F_TC 0x0200u
#define DNS_F_RD 0x0100u
#define DNS_F_RA 0x0080u
#define DNS_F_AD 0x0020u
#define DNS_F_CD 0x0010u

/*
 * struct dns_question - what the guest asked, from dns_parse_query().
 * @id: the query's id; answers must carry it.
 * @flags: the query's header flags (RD and CD are echoed in replies).
 * @qtype: QTYPE (A, AAAA, ...; never a zone transfer or other meta type but ANY).
 * @qclass: always DNS_CLASS_IN.
 * @edns: the query carried an EDNS OPT record.
 * @udp_size: the largest UDP answer the guest takes: 512 without EDNS, else
 *	the OPT record's payload size (at least 512).
 * @dnssec_ok: the OPT record's DO bit.
 * @qoff: offset of the question (name, type, class) in the query.
 * @qlen: its length, so a reply can echo the guest's exact bytes (case too).
 * @name: the name asked, lowercase, without the trailing dot ("" is the root),
 *	only [a-z0-9_-] between the dots.
 */
struct dns_question {
	uint16_t id;
	uint16_t flags;
	uint16_t qtype;
	uint16_t qclass;
	bool edns;
	bool dnssec_ok;
	uint16_t udp_size;
	size_t qoff, qlen;
	char name[DNS_MAX_NAME_TEXT + 1];
};

/*
 * dns_parse_query() - check that @p (@n bytes) is a standard query msb will
 * answer and fill @q. A standard query: QR clear, OPCODE 0, TC clear, one
 * question and nothing else but an optional EDNS OPT record; the question's
 * name uncompressed, of host-name characters only, class IN.
 *
 * @q is always filled so that dns_build_reply() can answer whatever came:
 * @q->id and @q->flags once @n covers the header; the question (@qoff,
 * @qlen, @name, @qtype, @qclass) only when it parsed, else @qlen is 0 and
 * the reply carries no question.
 * Return: 0; -EBADMSG for a malformed message (FORMERR, or silence);
 * -EPROTONOSUPPORT for a well-formed one msb does not serve (another
 * opcode or class, a zone transfer or other meta type, EDNS version > 0):
 * NOTIMP or REFUSED.
 */
int dns_parse_query(const uint8_t *p, size_t n, struct dns_question *q);

/*
 * dns_build_query() - the query msb sends upstream for @q (parsed from @query,
 * @qlen bytes, with dns_parse_query() returning 0), rebuilt rather than
 * forwarded: id @id, only RD and CD of the guest's flags, the question
 * (checked by the parse) and, when the guest sent EDNS, an OPT record of
 * msb's own carrying only the guest's UDP size (at most DNS_UDP_MAX_UP) and DO
 * bit. Options the guest added (client subnet, cookies, padding, anything
 * unknown) never leave the host.
 * Return: the length written to @out, 0 if @cap is too small or @q does not
 * fit @query.
 */
size_t dns_build_query(const uint8_t *query, size_t qlen, const struct dns_question *q, uint16_t id,
		       uint8_t *out, size_t cap);

/*
 * dns_build_reply() - msb's own answer to @q with no records: @rcode
 * (DNS_RCODE_*, NOERROR for an empty answer), @q->id, the question echoed
 * byte for byte from @query (@qlen bytes, the message @q was parsed from),
 * RD and CD copied, RA set, and an OPT record when the query had one.
 * Return: the length written to @out, 0 if @cap is too small or @rcode or
 * @q does not fit @query.
 */
size_t dns_build_reply(const uint8_t *query, size_t qlen, const struct dns_question *q, int rcode,
		       uint8_t *out, size_t cap);

/*
 * dns_filter_response() - check that the upstream answer @p (@n bytes) is the
 * answer to @q, then filter it in place.
 * @drop: the caller's rebind protection, asked about each A/AAAA record of
 *	the answer section that belongs to the question; true removes the
 *	record. NULL keeps them all.
 * @pin: called for each A/AAAA record kept, with @q->name and the record's
 *	TTL (the smallest TTL on the CNAME chain from the question to it), and
 *	again with the record's own name when a CNAME chain led to it. Only
 *	called once the whole message proved valid. NULL for none.
 * @ctx: passed to @drop and @pin.
 * @out_len: set on success to the message's length after filtering (≤ @n).
 *
 * Address records in the answer section that the question's CNAME chain does
 * not lead to are removed too: nothing the guest receives there is unpinned.
 * Records are only ever removed from the answer section; the header but
 * ANCOUNT and the question stay as the upstream wrote them (TC included:
 * the guest retries over TCP).
 * Return: 0; 1 when @drop removed address records and none is left (the
 * caller answers NXDOMAIN instead); -EBADMSG when @p is malformed or not the
 * answer to @q (the caller answers SERVFAIL); -EINVAL when @q->name is not
 * a name dns_parse_query() could have made. On error @p is untouched.
 */
int dns_filter_response(uint8_t *p, size_t n, const struct dns_question *q,
			bool (*drop)(const struct ipaddr *ip, void *ctx),
			void (*pin)(const char *name, const struct ipaddr *ip, uint32_t ttl,
				    void *ctx),
			void *ctx, size_t *out_len);

/*
 * dns_tcp_frame() - find the first whole message in a DNS-over-TCP stream
 * (@p, @n bytes: a 2-byte big-endian length, then the message, RFC 1035 4.2.2).
 * Return: 1 with *@msg_len set (the message starts at @p + 2); 0 when more
 * bytes are needed; -EBADMSG when the length cannot be a DNS message
 * (shorter than a header): the caller resets the connection.
 */
int dns_tcp_frame(const uint8_t *p, size_t n, size_t *msg_len);

#endif
