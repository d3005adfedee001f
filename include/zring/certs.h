/*
 * Local identities and their TLS contexts, loaded from the certificate
 * directory:
 *
 *   <dir>/root-cert.pem                                   trust bundle
 *   <dir>/<td>/ns/<ns>/sa/<sa>/cert-chain.pem, key.pem    one per identity
 *
 * A certstore is an immutable, reference-counted set of identities, each
 * with a server and a client WOLFSSL_CTX (TLS 1.3 only, peer verification
 * against the bundle, client certificates required by the server). Every
 * identity is checked before it is used: the chain verifies against the
 * bundle, it is valid now (not expired, not yet valid), the key matches the
 * certificate, and its URI SAN is the identity its path names. A bad one is
 * refused with a log line; with `prev` given, the previous good version of
 * that identity stays in use while it is still valid, with contexts rebuilt
 * on the new trust bundle: a bundle change always takes effect for new
 * handshakes. wolfSSL counts its
 * own references to a CTX, so handshakes begun on an old store finish on
 * it even after the store is released.
 */
#ifndef ZRING_CERTS_H
#define ZRING_CERTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

struct local_identity {
	char *id;		/* spiffe://td/ns/ns/sa/sa */
	char *trust_domain;
	WOLFSSL_CTX *server;
	WOLFSSL_CTX *client;
	uint64_t not_before_ms, not_after_ms;
	uint64_t files_sig;	/* stat signature of its files */
	char *chain_pem, *key_pem;	/* kept to rebuild contexts on a new bundle */
	size_t chain_len, key_len;
};

struct certstore {
	_Atomic unsigned refs;
	char *dir;
	struct local_identity *ids;
	size_t n;
	uint64_t sig;		/* stat signature of every file it came from */
	unsigned rejected;	/* identities refused in this load */
};

/*
 * Load every identity under dir. Identities whose files fail a check are
 * refused (logged); if prev has a still-valid version, that is kept.
 * Returns 0 and *out (refs 1), or -errno when the trust bundle itself
 * cannot be loaded (then nothing is usable).
 */
int certstore_load(const char *dir, const struct certstore *prev, struct certstore **out);

/* The stat signature of dir's files now, to decide whether to reload. */
uint64_t certstore_scan_sig(const char *dir);

struct certstore *certstore_ref(struct certstore *s);
void certstore_unref(struct certstore *s);

const struct local_identity *certstore_find(const struct certstore *s, const char *id);

/* The peer certificate's one URI SAN that starts with "spiffe://", copied
 * into buf. 0, -ENOENT (none), -EINVAL (more than one), -ENAMETOOLONG (does
 * not fit buf) or -ENOMEM (wolfSSL could not copy the certificate). */
int certs_peer_identity(WOLFSSL *ssl, char *buf, size_t len);
/* The same, from a certificate: its first spiffe:// URI SAN. */
int certs_x509_identity(WOLFSSL_X509 *x509, char *buf, size_t len);

/* "spiffe://<td>/ns/<ns>/sa/<sa>" into buf; 0 or -ENAMETOOLONG. */
int certs_identity(const char *td, const char *ns, const char *sa, char *buf, size_t len);

#endif
