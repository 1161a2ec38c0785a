/* SPDX-License-Identifier: Apache-2.0 */
/* The server name (SNI) of the ClientHello a guest opens a TLS connection with. */
#ifndef MSB_NET_SNI_H
#define MSB_NET_SNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes of handshake a ClientHello may take; a longer one is not looked into. */
#define SNI_PEEK_MAX (16u << 10)
#define SNI_NAME_MAX 253

/*
 * sni_peek() - @p holds the first @n bytes the guest sent. If they start a
 * TLS handshake whose ClientHello is complete, its host name (lower case, at
 * most @cap - 1 bytes; "" when there is none) goes to @name.
 * Return: 1 (complete), 0 (a prefix of a ClientHello: wait for more), -1
 * (not TLS, malformed, or larger than SNI_PEEK_MAX).
 */
int sni_peek(const uint8_t *p, size_t n, char *name, size_t cap);

#endif
