/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CA that signs the certificates TLS interception shows the guest: the
 * user's (--tls-intercept-ca-cert/-key) or the installation's, made on first
 * use in <MSB_HOME>/tls (ca.pem, ca-key.pem). Deleting that directory rotates
 * it: sandboxes made afterwards get a new one.
 */
#ifndef MSB_SANDBOX_TLSCA_H
#define MSB_SANDBOX_TLSCA_H

#include "sandbox/netspec.h"
#include "util/err.h"

/*
 * sbx_tls_ca_paths() - the interception CA's certificate and key files: the
 * pair in @t if it has one (@t may be NULL), else the installation's,
 * created (EC P-256, self-signed, 10 years) if it is not there yet; two
 * first uses at once agree on one CA. Return: 0 with newly allocated
 * absolute paths, or -1 with @err.
 */
int sbx_tls_ca_paths(const struct sbx_tls *t, char **cert, char **key, struct msb_err **err);

/*
 * sbx_tls_check_ca() - @cert is a PEM CA certificate and @key the PEM
 * private key (unencrypted) that matches it. Return: 0, or -1 with a
 * one-line @err naming the file and the fix.
 */
int sbx_tls_check_ca(const char *cert, const char *key, struct msb_err **err);

/* sbx_tls_check_certs() - @path holds at least one PEM certificate. Return: 0 or -1 with @err. */
int sbx_tls_check_certs(const char *path, struct msb_err **err);

#endif
