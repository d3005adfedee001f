/*
 * tls.c: two sessions over memory buffers handshake with each other, and
 * tls_check_peer decides inside the handshake: a refusal fails it with an
 * alert the other side reads as such (not a completed handshake).
 * Certificates come from scripts/certs.sh (needs openssl).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/certs.h"
#include "zring/tls.h"

static char dir[] = "/tmp/zr-test-tls.XXXXXX";
static char path[512];

static const char *file(const char *sa, const char *name)
{
	if (!sa)
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s/cluster.local/ns/default/sa/%s/%s", dir, sa, name);
	return path;
}

static void setup(void)
{
	const char *src = getenv("ZRING_SRCDIR");
	char cmd[1024];
	cr_assert(src, "ZRING_SRCDIR is not set");
	cr_assert(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "bash %s/scripts/certs.sh ca %s >/dev/null 2>&1 && "
		 "bash %s/scripts/certs.sh workload %s --ns default --sa client >/dev/null 2>&1 && "
		 "bash %s/scripts/certs.sh workload %s --ns default --sa server >/dev/null 2>&1",
		 src, dir, src, dir, src, dir);
	cr_assert_eq(system(cmd), 0, "scripts/certs.sh failed");
	tls_global_init();
}

static void teardown(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(tls, .init = setup, .fini = teardown);

static WOLFSSL_CTX *make_ctx(bool server, const char *sa)
{
	WOLFSSL_CTX *c = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method()
					       : wolfTLSv1_3_client_method());
	cr_assert(c);
	cr_assert_eq(wolfSSL_CTX_load_verify_locations(c, file(NULL, "root-cert.pem"), NULL),
		     WOLFSSL_SUCCESS);
	cr_assert_eq(wolfSSL_CTX_use_certificate_chain_file(c, file(sa, "cert-chain.pem")),
		     WOLFSSL_SUCCESS);
	cr_assert_eq(wolfSSL_CTX_use_PrivateKey_file(c, file(sa, "key.pem"), WOLFSSL_FILETYPE_PEM),
		     WOLFSSL_SUCCESS);
	wolfSSL_CTX_set_verify(c, WOLFSSL_VERIFY_PEER |
			       (server ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	tls_ctx_prepare(c);
	return c;
}

/* What each side's check saw and says. */
struct judge {
	int calls;
	char seen[256];
	int verdict;
};

static int check(void *ctx, WOLFSSL_X509 *leaf)
{
	struct judge *j = ctx;
	j->calls++;
	if (certs_x509_identity(leaf, j->seen, sizeof(j->seen)) < 0)
		j->seen[0] = '\0';
	return j->verdict;
}

/* Everything `from` wrote, into buf (which must outlive its reading). */
static size_t drain(struct tls *from, uint8_t *buf, size_t cap)
{
	size_t n = 0, len;
	const uint8_t *p;
	while ((p = tls_out_begin(from, &len))) {
		cr_assert(n + len <= cap);
		memcpy(buf + n, p, len);
		n += len;
		tls_out_done(from, len);
	}
	return n;
}

struct pair {
	WOLFSSL_CTX *cctx, *sctx;
	struct tls c, s;
	struct judge jc, js;	/* the client's check (of the server), the server's */
	int rc, rs;		/* last tls_handshake result of each */
	uint8_t c2s[1 << 16], s2c[1 << 16];
};

static void pair_init(struct pair *p)
{
	p->cctx = make_ctx(false, "client");
	p->sctx = make_ctx(true, "server");
	cr_assert_eq(tls_init(&p->c, p->cctx, false), 0);
	cr_assert_eq(tls_init(&p->s, p->sctx, true), 0);
	tls_check_peer(&p->c, check, &p->jc);
	tls_check_peer(&p->s, check, &p->js);
}

static void pair_deinit(struct pair *p)
{
	tls_deinit(&p->c);
	tls_deinit(&p->s);
	wolfSSL_CTX_free(p->cctx);
	wolfSSL_CTX_free(p->sctx);
}

/* Ping-pong the handshake until neither side waits for the other; bytes
 * for a side whose handshake is over stay with their sender. */
static void handshake(struct pair *p)
{
	p->rs = -EAGAIN;
	p->rc = tls_handshake(&p->c);
	for (int i = 0; i < 8 && (p->rc == -EAGAIN || p->rs == -EAGAIN); i++) {
		size_t n;
		if (p->rs == -EAGAIN && (n = drain(&p->c, p->c2s, sizeof(p->c2s)))) {
			tls_input(&p->s, p->c2s, n);
			p->rs = tls_handshake(&p->s);
		}
		if (p->rc == -EAGAIN && (n = drain(&p->s, p->s2c, sizeof(p->s2c)))) {
			tls_input(&p->c, p->s2c, n);
			p->rc = tls_handshake(&p->c);
		}
	}
}

/* The error `t` reports after reading what the other side sent last. */
static const char *read_verdict(struct tls *from, struct tls *t, uint8_t *buf, size_t cap)
{
	static char err[128];
	uint8_t plain[256];
	size_t n = drain(from, buf, cap);
	cr_assert(n > 0, "nothing was sent (no alert)");
	tls_input(t, buf, n);
	cr_assert_eq(tls_read(t, plain, sizeof(plain)), -EPROTO);
	return tls_error_string(t, err, sizeof(err));
}

Test(tls, both_accept)
{
	struct pair *p = calloc(1, sizeof(*p));
	pair_init(p);
	p->jc.verdict = p->js.verdict = 1;
	handshake(p);
	cr_expect_eq(p->rc, 0);
	cr_expect_eq(p->rs, 0);
	cr_expect_eq(p->jc.calls, 1);
	cr_expect_eq(p->js.calls, 1);
	cr_expect_str_eq(p->jc.seen, "spiffe://cluster.local/ns/default/sa/server");
	cr_expect_str_eq(p->js.seen, "spiffe://cluster.local/ns/default/sa/client");
	cr_expect(tls_alpn_h2(&p->c));
	pair_deinit(p);
	free(p);
}

Test(tls, server_refuses_client_with_alert)
{
	struct pair *p = calloc(1, sizeof(*p));
	pair_init(p);
	p->jc.verdict = 1;
	p->js.verdict = 0;
	handshake(p);
	/* TLS 1.3: the client's side is done before the server judges it. */
	cr_expect_eq(p->rc, 0);
	cr_expect_eq(p->rs, -EPROTO);
	cr_expect_eq(p->js.calls, 1);
	const char *why = read_verdict(&p->s, &p->c, p->s2c, sizeof(p->s2c));
	cr_expect(strstr(why, "alert"), "client saw no alert: %s", why);
	pair_deinit(p);
	free(p);
}

Test(tls, client_refuses_server_with_alert)
{
	struct pair *p = calloc(1, sizeof(*p));
	pair_init(p);
	p->jc.verdict = 0;
	p->js.verdict = 1;
	handshake(p);
	cr_expect_eq(p->rc, -EPROTO);
	cr_expect_eq(p->jc.calls, 1);
	cr_expect_eq(p->js.calls, 0, "the server judged a client that never finished");
	/* What the client sent last ended the server's handshake: an alert. */
	cr_expect_eq(p->rs, -EPROTO);
	char err[128];
	cr_expect(strstr(tls_error_string(&p->s, err, sizeof(err)), "alert"),
		  "server saw no alert: %s", err);
	pair_deinit(p);
	free(p);
}

/* The output buffers alone (no session, no certificates): tls_out_shrink
 * gives an idle connection's bulk buffers back. */
/* A buffer as bulk traffic leaves it: `cap` bytes, `len` still to send. */
static void fill(struct tls_buf *b, size_t cap, size_t len)
{
	b->data = malloc(cap);
	cr_assert(b->data);
	b->cap = cap;
	b->len = len;
}

Test(tls_out, shrink_frees_big_empty_buffers_only)
{
	struct tls t;
	memset(&t, 0, sizeof(t));
	fill(&t.out[0], 2 << 20, 0);		/* drained after a bulk transfer */
	fill(&t.out[1], 2 << 20, 100);		/* still holds output */
	tls_out_shrink(&t);
	cr_assert_null(t.out[0].data);
	cr_assert_eq(t.out[0].cap, 0);
	cr_assert_not_null(t.out[1].data, "a buffer with output stays");
	cr_assert_eq(t.out[1].len, 100);
	free(t.out[1].data);
}

Test(tls_out, shrink_keeps_small_buffers_and_what_the_kernel_reads)
{
	struct tls t;
	memset(&t, 0, sizeof(t));
	fill(&t.out[0], TLS_OUT_KEEP, 0);
	fill(&t.out[1], 1 << 20, 4096);
	t.sending = 1;
	t.in_flight = true;
	size_t len;
	cr_assert_null(tls_out_begin(&t, &len), "a send is in flight");
	tls_out_shrink(&t);
	cr_assert_not_null(t.out[0].data, "small buffers are kept");
	cr_assert_not_null(t.out[1].data, "the kernel is reading this one");
	tls_out_done(&t, 4096);
	cr_assert_eq(t.out[1].len, 0);
	tls_out_shrink(&t);
	cr_assert_null(t.out[1].data, "sent, empty and big: freed");
	cr_assert_not_null(t.out[0].data);
	free(t.out[0].data);
}
