/*
 * TLS over memory buffers: io_uring moves the ciphertext, wolfSSL
 * transforms it, nothing blocks.
 *
 * The owner receives ciphertext into its own buffer and hands it over with
 * tls_input(); wolfSSL pulls from it (and keeps any partial record itself)
 * while tls_handshake()/tls_read() run. Everything wolfSSL writes goes to
 * an output buffer the owner sends with io_uring: tls_out_begin() gives the
 * bytes to send, which stay put until tls_out_done() says how many were
 * sent; meanwhile new output collects in a second buffer, so memory the
 * kernel reads is never moved.
 */
#ifndef ZRING_TLS_H
#define ZRING_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* Decides on the peer's leaf certificate during the handshake: nonzero
 * accepts, 0 refuses. */
typedef int (*tls_leaf_check)(void *ctx, WOLFSSL_X509 *leaf);

struct tls_buf {
	uint8_t *data;
	size_t len, cap;
};

struct tls {
	WOLFSSL *ssl;
	const uint8_t *in;	/* ciphertext not yet taken by wolfSSL */
	size_t in_len;
	struct tls_buf out[2];	/* out[sending] is with the kernel */
	unsigned sending;
	size_t sent;		/* bytes of out[sending] already sent */
	bool in_flight;		/* out[sending] is being sent */
	bool handshake_done;
	int last_error;		/* wolfSSL error code of the last failure */
	tls_leaf_check check;	/* see tls_check_peer */
	void *check_ctx;
};

/* Library set-up and tear-down for the process (main) and for each thread
 * that did TLS or ECC work: wolfSSL keeps a per-thread ECC point cache
 * that only the owning thread can free. */
void tls_global_init(void);
void tls_global_deinit(void);
void tls_thread_deinit(void);

/* Set the memory-buffer I/O callbacks on a context (certs.c calls it). */
void tls_ctx_prepare(WOLFSSL_CTX *ctx);

/* A TLS session on ctx offering/accepting ALPN "h2". 0 or -ENOMEM. */
int tls_init(struct tls *t, WOLFSSL_CTX *ctx, bool server);
void tls_deinit(struct tls *t);

/* Check the peer inside the handshake (after tls_init): once wolfSSL has
 * verified the peer's chain against the trust bundle, check(ctx, leaf)
 * decides; a refusal fails the handshake with a bad_certificate alert to
 * the peer (as rustls does), rather than a completed handshake that is
 * then dropped. The peer must present a certificate (both sides). */
void tls_check_peer(struct tls *t, tls_leaf_check check, void *ctx);

/* Hand over received ciphertext; it must stay valid until the next
 * tls_handshake/tls_read returns -EAGAIN (wolfSSL has taken all of it). */
void tls_input(struct tls *t, const uint8_t *data, size_t len);

/* Drive the handshake: 0 done, -EAGAIN needs input, -EPROTO failed
 * (tls_error_string says why). */
int tls_handshake(struct tls *t);

/* Decrypt into buf: bytes read, 0 on close_notify, -EAGAIN needs input,
 * -EPROTO on error. */
long tls_read(struct tls *t, uint8_t *buf, size_t len);

/* Encrypt len bytes into the output buffer. 0 or -EPROTO / -ENOMEM. */
int tls_write(struct tls *t, const uint8_t *buf, size_t len);

/* Bytes waiting to be sent (both buffers). */
size_t tls_out_pending(const struct tls *t);

/* The next bytes to send, or NULL when nothing waits or a send is in
 * flight. Marks them in flight. */
const uint8_t *tls_out_begin(struct tls *t, size_t *len);

/* `n` bytes of the in-flight output were sent. */
void tls_out_done(struct tls *t, size_t n);

/* Frees the output buffers that are empty and bigger than TLS_OUT_KEEP
 * (bulk traffic grows them to a megabyte or more; the next output starts
 * small again). For a connection gone quiet; safe at any time. */
void tls_out_shrink(struct tls *t);
#define TLS_OUT_KEEP (64 * 1024)

const char *tls_error_string(const struct tls *t, char *buf, size_t len);

/* Was ALPN "h2" agreed? */
bool tls_alpn_h2(struct tls *t);

#endif
