/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS interception in the network process: a guest connection to an
 * intercept port is answered with a certificate the sandbox's CA mints for
 * the name the guest asked for, the upstream server is reached over a TLS
 * connection of our own (verified for that name), and the plaintext between
 * them goes through the secret substitution of hx.h. docs/network.md tells
 * which connections are intercepted and what is checked.
 */
#ifndef MSB_NET_TLS_H
#define MSB_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

struct net;
struct tcp_flow;
struct tls_global;

/* Leaf certificates kept (per name, least recently used first out) and how long each is good for.
 */
#define TLS_LEAF_CACHE	128
#define TLS_LEAF_LIFE_S (24L * 3600)
/* Plaintext held per direction per connection before the other side is read no more. */
#define TLS_PLAIN_MAX ((size_t)64 << 10)

/*
 * tls_global_new() - load the CA, the upstream trust (the host's bundle, read
 * now, plus @t->upstream_pem) and make the key leaves are minted with. Runs
 * before the process is confined (files are read here, never later).
 * Return: 0 and *@out, or -errno with @why.
 */
int tls_global_new(const struct net_tls *t, struct tls_global **out, char *why, size_t len);
void tls_global_free(struct tls_global *g);

/* tls_is_port() - is @port one of the intercept ports? */
bool tls_is_port(const struct net_tls *t, uint16_t port);

/* tls_name_match() - does @pattern (a name, or "*.suffix": the suffix and below) cover @name? */
bool tls_name_match(const char *pattern, const char *name);

/*
 * ix_attach() - a new outbound flow: look at what it carries (the ClientHello
 * on an intercept port, placeholders on any other). Return: 0 (nothing to
 * look at: the flow is plain) or 1 (f->ix set), -ENOMEM.
 */
int ix_attach(struct net *n, struct tcp_flow *f);
void ix_detach(struct tcp_flow *f);

/*
 * ix_pump() - move what can move: the guest's bytes (f->g2h) in, the
 * upstream socket both ways, bytes for the guest out into f->h2g (and
 * f->host_eof once the stream to the guest has ended). Return: 0, or -1 when
 * the flow must be reset both ways.
 */
int ix_pump(struct net *n, struct tcp_flow *f);

/* ix_events() - the epoll interest the flow's host socket needs now. */
uint32_t ix_events(const struct tcp_flow *f);

/* ix_passing() - the flow is past looking (a plain relay from now on). */
bool ix_passing(const struct tcp_flow *f);

#endif
