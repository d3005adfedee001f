/*
 * Identity certificates: load, check, build TLS contexts.
 * See include/zring/certs.h.
 */
#include "zring/certs.h"
#include "zring/file.h"
#include "zring/log.h"
#include "zring/tls.h"
#include "zring/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>
#include <wolfssl/wolfcrypt/asn.h>

#define CERT_FILE_MAX (1u << 20)

int certs_identity(const char *td, const char *ns, const char *sa, char *buf, size_t len)
{
	int n = snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Read a PEM file (regular files only: file.h); why[FILE_WHY_MAX] says
 * what was wrong. */
static int slurp(const char *path, char **out, size_t *len, char *why)
{
	return file_read(path, CERT_FILE_MAX, out, len, why, FILE_WHY_MAX);
}

static uint64_t stat_sig(const char *path, uint64_t h)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return h * 31 + 7;
	uint64_t v[4] = { (uint64_t)st.st_ino, (uint64_t)st.st_size,
			  (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec };
	for (int i = 0; i < 4; i++)
		h = (h ^ v[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t ms_of(const WOLFSSL_ASN1_TIME *t)
{
	struct tm tm;
	if (!t || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS)
		return 0;
	return (uint64_t)timegm(&tm) * 1000;
}

/*
 * The one URI SAN of x509 that starts with spiffe://, into buf. A
 * certificate with several names no single identity (-EINVAL): which is
 * "first" would depend on the library's order (wolfSSL lists SANs in
 * reverse), and an SVID carries exactly one. One too long for buf is
 * refused (-ENAMETOOLONG), never cut.
 */
static int x509_spiffe(WOLFSSL_X509 *x509, char *buf, size_t len)
{
	WOLFSSL_GENERAL_NAMES *names = wolfSSL_X509_get_ext_d2i(x509, NID_subject_alt_name, NULL, NULL);
	int err = -ENOENT;
	if (!names)
		return err;
	for (int i = 0; i < wolfSSL_sk_GENERAL_NAME_num(names); i++) {
		WOLFSSL_GENERAL_NAME *gn = wolfSSL_sk_GENERAL_NAME_value(names, i);
		if (!gn || gn->type != ASN_URI_TYPE || !gn->d.uniformResourceIdentifier)
			continue;
		const char *s = (const char *)wolfSSL_ASN1_STRING_data(gn->d.uniformResourceIdentifier);
		int n = wolfSSL_ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (!s || n <= 9 || strncmp(s, "spiffe://", 9) != 0)
			continue;
		if (err != -ENOENT) {
			err = -EINVAL;
			break;
		}
		if ((size_t)n >= len) {
			err = -ENAMETOOLONG;
			continue;	/* still refused if another follows */
		}
		memcpy(buf, s, (size_t)n);
		buf[n] = '\0';
		err = 0;
	}
	wolfSSL_GENERAL_NAMES_free(names);
	if (err < 0 && len)
		buf[0] = '\0';
	return err;
}

int certs_x509_identity(WOLFSSL_X509 *x509, char *buf, size_t len)
{
	return x509_spiffe(x509, buf, len);
}

int certs_peer_identity(WOLFSSL *ssl, char *buf, size_t len)
{
	/* A verified peer always sent one: NULL is wolfSSL failing to copy it. */
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(ssl);
	if (!x)
		return -ENOMEM;
	int err = x509_spiffe(x, buf, len);
	wolfSSL_X509_free(x);
	return err;
}

static WOLFSSL_CTX *make_ctx(bool server, const char *root, size_t root_len,
			     const char *chain, size_t chain_len, const char *key, size_t key_len,
			     const char **why)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method()
						  : wolfTLSv1_3_client_method());
	if (!ctx) {
		*why = "cannot create TLS context";
		return NULL;
	}
	if (wolfSSL_CTX_load_verify_buffer(ctx, (const unsigned char *)root, (long)root_len,
					   WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
		*why = "trust bundle does not load";
	} else if (wolfSSL_CTX_use_certificate_chain_buffer(ctx, (const unsigned char *)chain,
							    (long)chain_len) != WOLFSSL_SUCCESS) {
		*why = "certificate chain does not parse";
	} else if (wolfSSL_CTX_use_PrivateKey_buffer(ctx, (const unsigned char *)key, (long)key_len,
						     WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
		*why = "private key does not parse";
	} else if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
		*why = "private key does not match the certificate";
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER |
				       (server ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
		tls_ctx_prepare(ctx);
		return ctx;
	}
	wolfSSL_CTX_free(ctx);
	return NULL;
}

/* Sign with the key, verify with the certificate's public key: the only
 * check that catches a mismatched ECDSA key (wolfSSL's check_private_key
 * passes one in 5.5.4). */
static bool key_matches(WOLFSSL_X509 *leaf, const char *key, size_t key_len)
{
	static const unsigned char msg[] = "zring key match";
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	bool ok = false;
	WOLFSSL_BIO *bio = wolfSSL_BIO_new_mem_buf(key, (int)key_len);
	WOLFSSL_EVP_PKEY *priv = bio ? wolfSSL_PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	WOLFSSL_EVP_PKEY *pub = wolfSSL_X509_get_pubkey(leaf);
	WOLFSSL_EVP_MD_CTX *s = wolfSSL_EVP_MD_CTX_new(), *v = wolfSSL_EVP_MD_CTX_new();
	if (priv && pub && s && v &&
	    wolfSSL_EVP_DigestSignInit(s, NULL, wolfSSL_EVP_sha256(), NULL, priv) == 1 &&
	    wolfSSL_EVP_DigestSignUpdate(s, msg, sizeof(msg)) == 1 &&
	    wolfSSL_EVP_DigestSignFinal(s, sig, &siglen) == 1 &&
	    wolfSSL_EVP_DigestVerifyInit(v, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
	    wolfSSL_EVP_DigestVerifyUpdate(v, msg, sizeof(msg)) == 1)
		ok = wolfSSL_EVP_DigestVerifyFinal(v, sig, siglen) == 1;
	wolfSSL_EVP_MD_CTX_free(s);
	wolfSSL_EVP_MD_CTX_free(v);
	wolfSSL_EVP_PKEY_free(priv);
	wolfSSL_EVP_PKEY_free(pub);
	if (bio)
		wolfSSL_BIO_free(bio);
	return ok;
}

/* Does the leaf verify against the bundle? */
static bool chain_trusted(const char *root, size_t root_len, const char *chain, size_t chain_len)
{
	WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
	bool ok = cm &&
		  wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)root, (long)root_len,
						 WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS &&
		  wolfSSL_CertManagerVerifyBuffer(cm, (const unsigned char *)chain, (long)chain_len,
						 WOLFSSL_FILETYPE_PEM) == WOLFSSL_SUCCESS;
	if (cm)
		wolfSSL_CertManagerFree(cm);
	return ok;
}

static void identity_free(struct local_identity *id)
{
	wolfSSL_CTX_free(id->server);
	wolfSSL_CTX_free(id->client);
	free(id->id);
	free(id->trust_domain);
	free(id->chain_pem);
	free(id->key_pem);
	memset(id, 0, sizeof(*id));
}

static char *dup_bytes(const char *p, size_t n)
{
	char *q = malloc(n ? n : 1);
	if (q)
		memcpy(q, p, n);
	return q;
}

/* "NAME unreadable: <why it was not read>" in msg, which holds the why. */
static const char *unreadable(char *msg, const char *name)
{
	char tmp[FILE_WHY_MAX];
	memcpy(tmp, msg, sizeof(tmp));
	tmp[sizeof(tmp) - 1] = '\0';
	snprintf(msg, FILE_WHY_MAX + 32, "%s unreadable: %s", name, tmp);
	return msg;
}

/* Check one identity's files and build its contexts. *why says what is
 * wrong when it returns -EINVAL (or a file's -errno); it may point into
 * msg[FILE_WHY_MAX + 32]. */
static int load_identity(const char *root, size_t root_len, const char *path, const char *want,
			 struct local_identity *out, const char **why, char *msg)
{
	char file[4096], *chain = NULL, *key = NULL, san[512];
	size_t chain_len, key_len;
	int err;

	memset(out, 0, sizeof(*out));
	snprintf(file, sizeof(file), "%s/cert-chain.pem", path);
	if ((err = slurp(file, &chain, &chain_len, msg)) < 0) {
		*why = unreadable(msg, "cert-chain.pem");
		return err;
	}
	snprintf(file, sizeof(file), "%s/key.pem", path);
	if ((err = slurp(file, &key, &key_len, msg)) < 0) {
		free(chain);
		*why = unreadable(msg, "key.pem");
		return err;
	}
	err = -EINVAL;
	WOLFSSL_X509 *leaf = wolfSSL_X509_load_certificate_buffer((const unsigned char *)chain,
								   (int)chain_len, WOLFSSL_FILETYPE_PEM);
	if (!leaf) {
		*why = "certificate does not parse";
	} else if (wolfSSL_X509_cmp_current_time(wolfSSL_X509_get_notBefore(leaf)) > 0) {
		*why = "certificate not yet valid";
	} else if (wolfSSL_X509_cmp_current_time(wolfSSL_X509_get_notAfter(leaf)) < 0) {
		*why = "certificate expired";
	} else if (x509_spiffe(leaf, san, sizeof(san)) < 0) {
		*why = "certificate has no spiffe URI SAN, or more than one";
	} else if (strcmp(san, want) != 0) {
		*why = "certificate URI SAN does not match its path";
	} else if (!chain_trusted(root, root_len, chain, chain_len)) {
		*why = "certificate not signed by the trust bundle";
	} else if (!key_matches(leaf, key, key_len)) {
		*why = "private key does not match the certificate";
	} else if ((out->server = make_ctx(true, root, root_len, chain, chain_len, key, key_len, why)) &&
		   (out->client = make_ctx(false, root, root_len, chain, chain_len, key, key_len, why))) {
		out->id = strdup(want);
		out->not_before_ms = ms_of(wolfSSL_X509_get_notBefore(leaf));
		out->not_after_ms = ms_of(wolfSSL_X509_get_notAfter(leaf));
		out->chain_pem = chain;
		out->chain_len = chain_len;
		out->key_pem = key;
		out->key_len = key_len;
		chain = key = NULL;	/* kept by the identity */
		err = out->id ? 0 : -ENOMEM;
	}
	if (err < 0)
		identity_free(out);
	wolfSSL_X509_free(leaf);
	free(chain);
	free(key);
	return err;
}

typedef void (*identity_fn)(const char *td, const char *ns, const char *sa,
			    const char *path, void *arg);

/* Names that are real entries, not ".", ".." or Kubernetes' "..data". */
static bool entry_ok(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static void walk_level(const char *base, const char *names[3], int level,
		       identity_fn fn, void *arg)
{
	static const char *const middle[] = { "ns", "sa" };
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *e;
	char path[4096];
	while ((e = readdir(d))) {
		if (!entry_ok(e))
			continue;
		names[level] = e->d_name;
		if (level == 2) {
			snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
			fn(names[0], names[1], names[2], path, arg);
		} else {
			snprintf(path, sizeof(path), "%s/%s/%s", base, e->d_name, middle[level]);
			walk_level(path, names, level + 1, fn, arg);
		}
	}
	closedir(d);
}

/* Call fn for every <td>/ns/<ns>/sa/<sa> directory under dir. */
static void walk(const char *dir, identity_fn fn, void *arg)
{
	const char *names[3];
	walk_level(dir, names, 0, fn, arg);
}

static void sig_one(const char *td, const char *ns, const char *sa, const char *path, void *arg)
{
	uint64_t *h = arg;
	char file[4096];
	snprintf(file, sizeof(file), "%s/cert-chain.pem", path);
	*h = stat_sig(file, *h);
	snprintf(file, sizeof(file), "%s/key.pem", path);
	*h = stat_sig(file, *h);
}

uint64_t certstore_scan_sig(const char *dir)
{
	char file[4096];
	snprintf(file, sizeof(file), "%s/root-cert.pem", dir);
	uint64_t h = stat_sig(file, 0xcbf29ce484222325ull);
	walk(dir, sig_one, &h);
	return h;
}

struct load_ctx {
	struct certstore *s;
	const struct certstore *prev;
	const char *root;
	size_t root_len;
	int err;
};

static void log_refused(const char *id, const char *why, bool kept)
{
	struct log_line l;
	if (log_begin(&l, LOG_ERROR, "certificate refused")) {
		log_str(&l, "identity", id);
		log_str(&l, "error", why);
		log_str(&l, "keeping", kept ? "previous certificate" : "none");
		log_end(&l);
	}
}

/* prev's still-valid version of `id`, with contexts rebuilt on the current
 * trust bundle (which may be the very change being applied). */
static int keep_previous(const struct certstore *prev, const char *id, const char *root,
			 size_t root_len, struct local_identity *out)
{
	const struct local_identity *p = prev ? certstore_find(prev, id) : NULL;
	const char *why;
	if (!p || p->not_after_ms <= wall_ms())
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->id = strdup(p->id);
	out->chain_pem = dup_bytes(p->chain_pem, p->chain_len);
	out->key_pem = dup_bytes(p->key_pem, p->key_len);
	out->chain_len = p->chain_len;
	out->key_len = p->key_len;
	out->not_before_ms = p->not_before_ms;
	out->not_after_ms = p->not_after_ms;
	if (out->id && out->chain_pem && out->key_pem &&
	    (out->server = make_ctx(true, root, root_len, p->chain_pem, p->chain_len,
				    p->key_pem, p->key_len, &why)) &&
	    (out->client = make_ctx(false, root, root_len, p->chain_pem, p->chain_len,
				    p->key_pem, p->key_len, &why)))
		return 0;
	identity_free(out);
	return -ENOMEM;
}

/* The pair's stat signature, to notice a rotation landing mid-read. */
static uint64_t pair_sig(const char *path)
{
	char file[4096];
	snprintf(file, sizeof(file), "%s/cert-chain.pem", path);
	uint64_t h = stat_sig(file, 1);
	snprintf(file, sizeof(file), "%s/key.pem", path);
	return stat_sig(file, h);
}

/* Load, and if the files changed while we read them (a rotation renaming
 * the key then the chain), read again, a few times at most. */
static int load_stable(const char *root, size_t root_len, const char *path, const char *want,
		       struct local_identity *out, const char **why, char *msg)
{
	int err = -EAGAIN;
	for (int tries = 0; tries < 3; tries++) {
		uint64_t before = pair_sig(path);
		err = load_identity(root, root_len, path, want, out, why, msg);
		if (pair_sig(path) == before)
			return err;
		if (err == 0)
			identity_free(out);
		usleep(10000);
	}
	return err;
}

static void load_one(const char *td, const char *ns, const char *sa, const char *path, void *arg)
{
	struct load_ctx *lc = arg;
	struct certstore *s = lc->s;
	char want[512], msg[FILE_WHY_MAX + 32];
	const char *why = "identity name too long";
	struct local_identity id;
	struct local_identity *grown = realloc(s->ids, (s->n + 1) * sizeof(*s->ids));
	if (!grown) {
		lc->err = -ENOMEM;
		return;
	}
	s->ids = grown;
	int err = certs_identity(td, ns, sa, want, sizeof(want));
	if (err == 0)
		err = load_stable(lc->root, lc->root_len, path, want, &id, &why, msg);
	if (err < 0) {
		s->rejected++;
		bool kept = keep_previous(lc->prev, want, lc->root, lc->root_len, &id) == 0;
		log_refused(want, why, kept);
		if (!kept)
			return;
	}
	id.trust_domain = strdup(td);
	s->ids[s->n++] = id;
}

int certstore_load(const char *dir, const struct certstore *prev, struct certstore **out)
{
	struct certstore *s = calloc(1, sizeof(*s));
	char file[4096], why[FILE_WHY_MAX];
	struct load_ctx lc = { .s = s, .prev = prev };
	char *root = NULL;
	if (!s)
		return -ENOMEM;
	atomic_init(&s->refs, 1);
	s->sig = certstore_scan_sig(dir);
	s->dir = strdup(dir);
	snprintf(file, sizeof(file), "%s/root-cert.pem", dir);
	int err = slurp(file, &root, &lc.root_len, why);
	if (err < 0) {
		struct log_line l;
		if (log_begin(&l, LOG_ERROR, "trust bundle unreadable")) {
			log_str(&l, "file", file);
			log_str(&l, "error", why);
			log_end(&l);
		}
		certstore_unref(s);
		return err;
	}
	lc.root = root;
	walk(dir, load_one, &lc);
	free(root);
	if (lc.err < 0) {
		certstore_unref(s);
		return lc.err;
	}
	*out = s;
	return 0;
}

struct certstore *certstore_ref(struct certstore *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void certstore_unref(struct certstore *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n; i++)
		identity_free(&s->ids[i]);
	free(s->ids);
	free(s->dir);
	free(s);
}

const struct local_identity *certstore_find(const struct certstore *s, const char *id)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->ids[i].id, id) == 0)
			return &s->ids[i];
	return NULL;
}
