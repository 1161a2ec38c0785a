// SPDX-License-Identifier: Apache-2.0
/* The TLS interception CA: checking the user's, making the installation's on first use. */
#define _GNU_SOURCE
#include "sandbox/tlsca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define CA_DAYS 3650
#define CA_CERT "ca.pem"
#define CA_KEY	"ca-key.pem"
#define CA_LOCK ".lock"
#define PEM_MAX ((size_t)1 << 20)

/* An encrypted key is refused rather than prompted for: msb runs unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static void x509_freep(X509 **x)
{
	X509_free(*x);
}

static void pkey_freep(EVP_PKEY **k)
{
	EVP_PKEY_free(*k);
}

int sbx_tls_check_ca(const char *cert, const char *key, struct msb_err **err)
{
	_cleanup_fclose_ FILE *cf = fopen(cert, "re");
	_cleanup_fclose_ FILE *kf = NULL;
	_cleanup_(x509_freep) X509 *x = NULL;
	_cleanup_(pkey_freep) EVP_PKEY *pk = NULL;
	int r = 0;

	if (!cf)
		return msb_err_sys(err, errno, "CA certificate %s", cert);
	x = PEM_read_X509(cf, NULL, no_passphrase, NULL);
	if (!x)
		r = msb_err_set(err, EINVAL, "CA certificate %s: not a PEM certificate", cert);
	else if (X509_check_ca(x) < 1)
		r = msb_err_set(
			err, EINVAL,
			"CA certificate %s: not a CA certificate (it needs basicConstraints "
			"CA:TRUE)",
			cert);
	if (!r && !(kf = fopen(key, "re")))
		r = msb_err_sys(err, errno, "CA key %s", key);
	if (!r && !(pk = PEM_read_PrivateKey(kf, NULL, no_passphrase, NULL)))
		r = msb_err_set(err, EINVAL,
				"CA key %s: not a PEM private key (an unencrypted one is needed)",
				key);
	if (!r && X509_check_private_key(x, pk) != 1)
		r = msb_err_set(err, EINVAL,
				"CA key %s does not match the CA certificate %s (give the key the "
				"certificate was made for)",
				key, cert);
	ERR_clear_error();
	return r;
}

int sbx_tls_check_certs(const char *path, struct msb_err **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	X509 *x;
	int n = 0;

	if (!f)
		return msb_err_sys(err, errno, "%s", path);
	while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL))) {
		X509_free(x);
		n++;
	}
	ERR_clear_error();
	if (!n)
		return msb_err_set(err, EINVAL, "%s: no PEM certificate in it", path);
	return 0;
}

/* --- the installation's CA ---------------------------------------------- */

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int r;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return -1;
	r = X509_add_ext(x, e, -1) ? 0 : -1;
	X509_EXTENSION_free(e);
	return r;
}

/* A self-signed CA for @pk, named after this host. Return: the certificate, or NULL. */
static X509 *make_cert(EVP_PKEY *pk)
{
	char host[256] = "localhost", cn[320];
	unsigned char rnd[16];
	X509 *x = X509_new();
	BIGNUM *bn = NULL;
	X509_NAME *nm;
	bool ok;

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(cn, sizeof(cn), "msb TLS interception CA %.63s", host);
	if (!x || random_bytes(rnd, sizeof(rnd)) < 0) {
		X509_free(x);
		return NULL;
	}
	rnd[0] &= 0x7f; /* a positive serial */
	rnd[0] |= 0x01;
	bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
	nm = X509_get_subject_name(x);
	ok = bn && X509_set_version(x, X509_VERSION_3) &&
	     BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	     X509_time_adj_ex(X509_getm_notAfter(x), CA_DAYS, 0, NULL) &&
	     X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
					0) &&
	     X509_set_issuer_name(x, nm) && X509_set_pubkey(x, pk) &&
	     add_ext(x, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
	     add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0 &&
	     add_ext(x, NID_subject_key_identifier, "hash") == 0 &&
	     add_ext(x, NID_authority_key_identifier, "keyid:always") == 0 &&
	     X509_sign(x, pk, EVP_sha256()) > 0;
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Writes what @bio holds to @path (0600 for the key, 0644 for the certificate), atomically. */
static int write_bio(BIO *bio, const char *path, mode_t mode)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0 || !data)
		return -EIO;
	return write_file_atomic(path, data, (size_t)n, mode);
}

/* Makes the key, then the certificate: a certificate there means its key is there. */
static int make_ca(const char *cert, const char *key, struct msb_err **err)
{
	_cleanup_(pkey_freep) EVP_PKEY *pk = EVP_EC_gen("P-256");
	_cleanup_(x509_freep) X509 *x = pk ? make_cert(pk) : NULL;
	BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
	int r = -EIO;

	if (x && kb && cb && PEM_write_bio_PrivateKey(kb, pk, NULL, NULL, 0, NULL, NULL) &&
	    PEM_write_bio_X509(cb, x)) {
		r = write_bio(kb, key, 0600);
		if (!r)
			r = write_bio(cb, cert, 0644);
	}
	BIO_free(kb);
	BIO_free(cb);
	ERR_clear_error();
	if (r < 0)
		return msb_err_sys(err, -r, "making the TLS interception CA %s", cert);
	return 0;
}

static int installation_ca(char **cert, char **key, struct msb_err **err)
{
	const char *home = msb_home();
	_cleanup_free_ char *dir = home ? path_join(home, "tls") : NULL, *lockp = NULL;
	_cleanup_free_ char *c = dir ? path_join(dir, CA_CERT) : NULL;
	_cleanup_free_ char *k = dir ? path_join(dir, CA_KEY) : NULL;
	_cleanup_close_ int lock = -1;
	int r;

	if (!c || !k || !(lockp = path_join(dir, CA_LOCK)))
		return msb_err_sys(err, ENOMEM, "the TLS interception CA");
	if (access(c, F_OK) != 0 || access(k, F_OK) != 0) {
		r = mkdir_p(dir, 0700);
		if (r < 0)
			return msb_err_sys(err, -r, "%s", dir);
		/* Two first uses at once: the second waits and finds the first's CA. */
		lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (lock < 0)
			return msb_err_sys(err, errno, "%s", lockp);
		while (flock(lock, LOCK_EX) < 0)
			if (errno != EINTR)
				return msb_err_sys(err, errno, "%s", lockp);
		if ((access(c, F_OK) != 0 || access(k, F_OK) != 0) && make_ca(c, k, err) < 0)
			return -1;
	}
	if (sbx_tls_check_ca(c, k, err) < 0)
		return msb_err_prefix(err,
				      "the TLS interception CA is broken (remove %s to make a "
				      "new one)",
				      dir);
	*cert = steal_ptr(c);
	*key = steal_ptr(k);
	return 0;
}

int sbx_tls_ca_paths(const struct sbx_tls *t, char **cert, char **key, struct msb_err **err)
{
	*cert = *key = NULL;
	if (t && t->ca_cert && t->ca_key) {
		*cert = strdup(t->ca_cert);
		*key = strdup(t->ca_key);
		if (!*cert || !*key) {
			free(*cert);
			free(*key);
			*cert = *key = NULL;
			return msb_err_sys(err, ENOMEM, "the TLS interception CA");
		}
		return 0;
	}
	return installation_ca(cert, key, err);
}
