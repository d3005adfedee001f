/*
 * TLS over memory buffers. See include/zring/tls.h.
 */
#include "zring/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/wolfcrypt/ecc.h>

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls *t = ctx;
	if (t->in_len == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	size_t n = (size_t)sz < t->in_len ? (size_t)sz : t->in_len;
	memcpy(buf, t->in, n);
	t->in += n;
	t->in_len -= n;
	return (int)n;
}

static int buf_append(struct tls_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		/* Small first: most peers that never finish a handshake get
		 * only an alert; a busy tunnel grows it in a few steps. */
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		uint8_t *p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

/* wolfSSL's output lands in the buffer the kernel is not reading. */
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls *t = ctx;
	struct tls_buf *b = &t->out[t->in_flight ? !t->sending : t->sending];
	if (buf_append(b, buf, (size_t)sz) < 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

void tls_global_init(void)
{
	wolfSSL_Init();
}

void tls_global_deinit(void)
{
	tls_thread_deinit();
	wolfSSL_Cleanup();
}

void tls_thread_deinit(void)
{
#ifdef FP_ECC
	wc_ecc_fp_free();
#endif
}

void tls_ctx_prepare(WOLFSSL_CTX *ctx)
{
	wolfSSL_CTX_SetIORecv(ctx, io_recv);
	wolfSSL_CTX_SetIOSend(ctx, io_send);
}

int tls_init(struct tls *t, WOLFSSL_CTX *ctx, bool server)
{
	static char h2[] = "h2";
	memset(t, 0, sizeof(*t));
	t->ssl = wolfSSL_new(ctx);
	if (!t->ssl)
		return -ENOMEM;
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	if (wolfSSL_UseALPN(t->ssl, h2, sizeof(h2) - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH) !=
	    WOLFSSL_SUCCESS) {
		tls_deinit(t);
		return -ENOMEM;
	}
	if (server)
		wolfSSL_set_accept_state(t->ssl);
	else
		wolfSSL_set_connect_state(t->ssl);
	return 0;
}

/* wolfSSL's verify callback: for the leaf (depth 0) of a chain that
 * verified, the owner's check decides. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
	struct tls *t = store->userCtx;
	if (!preverify || !t || !t->check || store->error_depth != 0)
		return preverify;
	WOLFSSL_X509 *leaf = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	return leaf && t->check(t->check_ctx, leaf);
}

void tls_check_peer(struct tls *t, tls_leaf_check check, void *ctx)
{
	t->check = check;
	t->check_ctx = ctx;
	wolfSSL_set_verify(t->ssl, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   verify_cb);
	wolfSSL_SetCertCbCtx(t->ssl, t);
}

void tls_deinit(struct tls *t)
{
	if (t->ssl)
		wolfSSL_free(t->ssl);
	free(t->out[0].data);
	free(t->out[1].data);
	memset(t, 0, sizeof(*t));
}

void tls_input(struct tls *t, const uint8_t *data, size_t len)
{
	t->in = data;
	t->in_len = len;
}

static int classify(struct tls *t, int ret)
{
	int e = wolfSSL_get_error(t->ssl, ret);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	t->last_error = e;
	return -EPROTO;
}

int tls_handshake(struct tls *t)
{
	if (t->handshake_done)
		return 0;
	int ret = wolfSSL_negotiate(t->ssl);
	if (ret == WOLFSSL_SUCCESS) {
		t->handshake_done = true;
		return 0;
	}
	return classify(t, ret);
}

long tls_read(struct tls *t, uint8_t *buf, size_t len)
{
	int ret = wolfSSL_read(t->ssl, buf, (int)(len > 1 << 30 ? 1 << 30 : len));
	if (ret > 0)
		return ret;
	if (wolfSSL_get_error(t->ssl, ret) == WOLFSSL_ERROR_ZERO_RETURN)
		return 0;
	return classify(t, ret);
}

int tls_write(struct tls *t, const uint8_t *buf, size_t len)
{
	while (len) {
		int chunk = len > 1 << 20 ? 1 << 20 : (int)len;
		int ret = wolfSSL_write(t->ssl, buf, chunk);
		if (ret <= 0)
			return classify(t, ret) == -EAGAIN ? -ENOMEM : -EPROTO;
		buf += ret;
		len -= (size_t)ret;
	}
	return 0;
}

size_t tls_out_pending(const struct tls *t)
{
	return t->out[0].len + t->out[1].len - (t->in_flight ? t->sent : 0);
}

const uint8_t *tls_out_begin(struct tls *t, size_t *len)
{
	if (t->in_flight)
		return NULL;
	struct tls_buf *b = &t->out[t->sending];
	if (b->len == 0) {
		/* Everything went out; whatever collected meanwhile is next. */
		t->sending = !t->sending;
		b = &t->out[t->sending];
		if (b->len == 0)
			return NULL;
	}
	t->in_flight = true;
	*len = b->len - t->sent;
	return b->data + t->sent;
}

void tls_out_done(struct tls *t, size_t n)
{
	struct tls_buf *b = &t->out[t->sending];
	t->in_flight = false;
	t->sent += n;
	if (t->sent >= b->len) {
		b->len = 0;
		t->sent = 0;
		t->sending = !t->sending;
	}
}

void tls_out_shrink(struct tls *t)
{
	for (unsigned i = 0; i < 2; i++) {
		struct tls_buf *b = &t->out[i];
		/* An empty buffer the kernel is not reading (in flight with
		 * len 0 cannot happen: nothing to send). */
		if (b->len || b->cap <= TLS_OUT_KEEP || (t->in_flight && i == t->sending))
			continue;
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

const char *tls_error_string(const struct tls *t, char *buf, size_t len)
{
	wolfSSL_ERR_error_string_n((unsigned long)t->last_error, buf, len);
	return buf;
}

bool tls_alpn_h2(struct tls *t)
{
	char *proto = NULL;
	unsigned short n = 0;
	return wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &n) == WOLFSSL_SUCCESS &&
	       n == 2 && memcmp(proto, "h2", 2) == 0;
}
