// SPDX-License-Identifier: Apache-2.0
/*
 * The server name of a TLS ClientHello, read from the first bytes a guest
 * sends on a connection (before anything is decided about it). Every length
 * is the guest's and checked against what is there; nothing is copied but
 * the name, which must be a plausible DNS name.
 */
#include "net/sni.h"

#include <ctype.h>
#include <string.h>

static unsigned int be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

static unsigned int be24(const uint8_t *p)
{
	return (unsigned int)p[0] << 16 | (unsigned int)p[1] << 8 | p[2];
}

/* A host name as a certificate could carry it: letters, digits, '-', '.', '_'; no empty label. */
static bool plausible_name(const uint8_t *p, size_t n)
{
	if (!n || n > SNI_NAME_MAX || p[0] == '.' || p[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.' && i && p[i - 1] == '.')
			return false;
		if (!isalnum(p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
			return false;
	}
	return true;
}

/*
 * The handshake message of the first record(s): a ClientHello may span
 * several records (large key shares); they are joined into @hs (at most
 * SNI_PEEK_MAX bytes). Return: its length, 0 if more bytes are needed, -1 if
 * this is not a TLS handshake.
 */
static long join_handshake(const uint8_t *p, size_t n, uint8_t *hs, size_t cap)
{
	size_t off = 0, have = 0, want = 0;

	for (;;) {
		size_t rlen;

		if (n - off < 5)
			return 0;
		if (p[off] != 22 || p[off + 1] != 3)
			return -1;
		rlen = be16(p + off + 3);
		if (!rlen || rlen > 16384 + 256)
			return -1;
		if (n - off - 5 < rlen)
			return 0;
		if (have + rlen > cap)
			return -1;
		memcpy(hs + have, p + off + 5, rlen);
		have += rlen;
		off += 5 + rlen;
		if (!want && have >= 4) {
			if (hs[0] != 1) /* client_hello */
				return -1;
			want = 4 + be24(hs + 1);
			if (want > cap)
				return -1;
		}
		if (want && have >= want)
			return (long)want;
	}
}

int sni_peek(const uint8_t *p, size_t n, char *name, size_t cap)
{
	uint8_t hs[SNI_PEEK_MAX];
	long len = join_handshake(p, n, hs, sizeof(hs));
	size_t off, end;

	if (cap)
		name[0] = '\0';
	if (len <= 0)
		return (int)len;
	end = (size_t)len;
	/* type(1) length(3) version(2) random(32) */
	off = 4 + 2 + 32;
	if (end < off + 1)
		return -1;
	off += 1 + hs[off]; /* session id */
	if (end < off + 2)
		return -1;
	off += 2 + be16(hs + off); /* cipher suites */
	if (end < off + 1)
		return -1;
	off += 1 + hs[off]; /* compression methods */
	if (off == end)
		return 1; /* no extensions: no name */
	if (end < off + 2 || end - off - 2 < be16(hs + off))
		return -1;
	end = off + 2 + be16(hs + off);
	off += 2;
	while (end - off >= 4) {
		unsigned int type = be16(hs + off), elen = be16(hs + off + 2);
		size_t e, eend;

		off += 4;
		if (end - off < elen)
			return -1;
		if (type != 0) { /* server_name */
			off += elen;
			continue;
		}
		if (elen < 2 || be16(hs + off) != elen - 2)
			return -1;
		eend = off + elen;
		for (e = off + 2; eend - e >= 3;) {
			unsigned int ntype = hs[e], nlen = be16(hs + e + 1);

			e += 3;
			if (eend - e < nlen)
				return -1;
			if (ntype == 0) { /* host_name */
				if (!plausible_name(hs + e, nlen) || nlen + 1 > cap)
					return -1;
				for (unsigned int i = 0; i < nlen; i++)
					name[i] = (char)tolower(hs[e + i]);
				name[nlen] = '\0';
				return 1;
			}
			e += nlen;
		}
		return -1;
	}
	return off == end ? 1 : -1;
}
