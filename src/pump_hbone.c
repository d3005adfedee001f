/*
 * The HBONE pump: one side of the conn is a socket, the other an HTTP/2
 * stream on a tunnel.
 *
 * socket -> stream: io_uring recv into a provided buffer (none held while
 * idle); the stream's data provider hands it to nghttp2, which frames and
 * encrypts it right away, and the buffer goes back before the next recv.
 * A stream whose send window is closed is not asked for data, so the
 * buffer stays and no further recv is armed: backpressure reaches the
 * sender's socket.
 *
 * stream -> socket: DATA arrives in a callback, is queued, and sent with
 * io_uring; only once bytes reached the socket is their window given back
 * (nghttp2_session_consume), so a slow reader holds at most one stream
 * window (4 MiB) in zring.
 *
 * END_STREAM is FIN both ways (half-close); RST_STREAM and tunnel loss are
 * resets.
 */
#include "zring/conn.h"
#include "zring/hbone.h"
#include "zring/pump.h"
#include "zring/ring.h"
#include "zring/tunnel.h"
#include "zring/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FRAME_PAYLOAD (16384 - 9)

/* The direction whose source is the socket / the stream. */
static unsigned sock_dir(const struct conn *c)
{
	return c->stream_side == SIDE_UPSTREAM ? 0 : 1;
}

static int sock_fd(const struct conn *c)
{
	return c->fd[!c->stream_side];
}

static void arm_recv(struct conn *c)
{
	pump_arm_recv(c, sock_dir(c), sock_fd(c));
}

static void drop_buffer(struct conn *c, struct pump_dir *pd)
{
	pump_drop_buffer(c, (unsigned)(pd - c->dir));
}

static void resume_stream(struct conn *c)
{
	if (c->tunnel) {
		nghttp2_session_resume_data(c->tunnel->h2, c->stream_id);
		tunnel_flush(c->tunnel);
	}
}

/* Both ways ended: close. We may be inside an nghttp2 callback, so the
 * conn is freed at the loop boundary, not here. */
static void maybe_done(struct conn *c)
{
	if ((c->dir[0].flags & DIR_EOF) && (c->dir[1].flags & DIR_EOF) && !c->closing) {
		conn_close(c, 0, NULL, false);
		worker_defer_put(c->w, c);
	}
}

static void hbone_run(struct conn *c, unsigned d)
{
	if (d == sock_dir(c))
		arm_recv(c);
}

/* socket -> stream: a recv completed. */
static void hbone_on_in(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	struct pump_dir *pd = &c->dir[d];
	pump_take_buffer(c, d, cqe);
	if (cqe->res > 0) {
		pd->len = (uint32_t)cqe->res;
		pd->off = 0;
	} else {
		drop_buffer(c, pd);
		if (cqe->res == -ENOBUFS) {
			worker_wait_enqueue(c->w, pd);
			return;
		}
		if (cqe->res < 0) {
			conn_close(c, cqe->res, c->stream_side == SIDE_UPSTREAM ?
				   "client reset" : "upstream reset", true);
			return;
		}
		pd->flags |= DIR_EOF_SEEN;	/* FIN: END_STREAM once drained */
	}
	resume_stream(c);
}

ssize_t pump_hbone_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	struct conn *c = src->ptr;
	if (!c || c->closing)
		return NGHTTP2_ERR_DEFERRED;
	unsigned d = sock_dir(c);
	struct pump_dir *pd = &c->dir[d];
	if (pd->flags & DIR_HAS_BUF) {
		size_t n = pd->len - pd->off;
		if (n > len)
			n = len;
		/* A 9-byte frame header plus this fills one 16 KiB TLS record
		 * exactly; a full 16 KiB payload would spill into a second, tiny
		 * record for every frame. */
		if (n > FRAME_PAYLOAD)
			n = FRAME_PAYLOAD;
		/* No copy: pump_hbone_send_data encrypts straight from the
		 * buffer when nghttp2 sends this frame. */
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
		conn_touch(c);
		return (ssize_t)n;
	}
	if (pd->flags & DIR_EOF_SEEN) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		pd->flags = (uint8_t)((pd->flags & ~DIR_EOF_SEEN) | DIR_EOF);
		maybe_done(c);
		return 0;
	}
	return NGHTTP2_ERR_DEFERRED;
}

#define CHUNK_CAP (120 * 1024)	/* under malloc's mmap threshold */

int pump_hbone_send_data(struct tunnel *t, struct conn *c, const uint8_t *framehd, size_t length)
{
	unsigned d = sock_dir(c);
	struct pump_dir *pd = &c->dir[d];
	uint8_t *p = bufring_data(&c->w->bufs, pd->bid) + pd->off;
	/* The header goes in front of the payload: into the buffer's headroom
	 * for the first frame, over already-encrypted bytes for the others. */
	memcpy(p - 9, framehd, 9);
	if (tls_write(&t->tls, p - 9, length + 9) < 0)
		return -EPROTO;
	pd->off += (uint32_t)length;
	pump_dir_moved(c, d, (uint32_t)length);
	if (pd->off == pd->len) {
		drop_buffer(c, pd);
		if (!c->closing)
			arm_recv(c);
	}
	return 0;
}

static void arm_send(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	struct chunk *k = pd->q_head;
	struct io_uring_sqe *sqe = ring_sqe_op(&c->w->ring, &pd->op_out);
	io_uring_prep_send(sqe, sock_fd(c), k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
	pd->flags |= DIR_SENDING;
	conn_op_submitted(c);
}

/* stream -> socket: the queue is empty and the peer ended the stream. */
static void pass_fin(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	bool queued = pd->q_head && pd->q_head->off < pd->q_head->len;
	if (!(pd->flags & DIR_EOF_SEEN) || queued || (pd->flags & DIR_SENDING))
		return;
	pd->flags = (uint8_t)((pd->flags & ~DIR_EOF_SEEN) | DIR_EOF);
	shutdown(sock_fd(c), SHUT_WR);
	maybe_done(c);
}

int pump_hbone_data(struct conn *c, const uint8_t *data, size_t len)
{
	unsigned d = !sock_dir(c);
	struct pump_dir *pd = &c->dir[d];
	if (c->closing) {
		if (c->tunnel)
			nghttp2_session_consume(c->tunnel->h2, c->stream_id, len);
		return 0;
	}
	/* Frames coalesce into chunks of up to CHUNK_CAP, so the socket gets
	 * large sends rather than one per 16 KiB frame. Appending past `len`
	 * never touches the bytes an in-flight send reads. */
	struct chunk *k = pd->q_tail;
	if (!k || k->cap - k->len < len) {
		size_t cap = len > CHUNK_CAP ? len : CHUNK_CAP;
		k = malloc(sizeof(*k) + cap);
		if (!k)
			return -ENOMEM;
		k->next = NULL;
		k->cap = (uint32_t)cap;
		k->len = k->off = 0;
		if (pd->q_tail)
			pd->q_tail->next = k;
		else
			pd->q_head = k;
		pd->q_tail = k;
	}
	memcpy(k->data + k->len, data, len);
	k->len += (uint32_t)len;
	if (!(pd->flags & DIR_SENDING))
		arm_send(c, d);
	return 0;
}

/* A send of the queue head completed. */
static void hbone_on_out(struct conn *c, unsigned d, const struct io_uring_cqe *cqe)
{
	struct pump_dir *pd = &c->dir[d];
	pd->flags &= (uint8_t)~DIR_SENDING;
	if (cqe->res <= 0) {
		conn_close(c, cqe->res ? cqe->res : -EPIPE, c->stream_side == SIDE_UPSTREAM ?
			   "client reset" : "upstream reset", true);
		return;
	}
	struct chunk *k = pd->q_head;
	k->off += (uint32_t)cqe->res;
	pump_dir_moved(c, d, (uint32_t)cqe->res);
	if (c->tunnel) {
		/* The bytes reached the socket: their window goes back. */
		nghttp2_session_consume(c->tunnel->h2, c->stream_id, (size_t)cqe->res);
		tunnel_flush(c->tunnel);	/* WINDOW_UPDATE when due */
	}
	/* Drained chunks go at once: an idle connection holds none. */
	if (k->off == k->len) {
		pd->q_head = k->next;
		if (!pd->q_head)
			pd->q_tail = NULL;
		free(k);
	}
	k = pd->q_head;
	if (k && k->off < k->len)
		arm_send(c, d);
	else
		pass_fin(c, d);
}

size_t pump_hbone_queued(const struct conn *c)
{
	size_t n = 0;
	for (const struct chunk *k = c->dir[!sock_dir(c)].q_head; k; k = k->next)
		n += k->len - k->off;
	return n;
}

void pump_hbone_end(struct conn *c)
{
	unsigned d = !sock_dir(c);
	c->dir[d].flags |= DIR_EOF_SEEN;
	if (c->connected)
		pass_fin(c, d);
}

void pump_hbone_stream_closed(struct conn *c, uint32_t code)
{
	if (c->closing)
		return;
	if (code == NGHTTP2_REFUSED_STREAM) {
		/* Not processed (RFC 9113 8.7; also the streams a GOAWAY left
		 * out): safe to send again, so the client never sees it. */
		int err = hbone_client_retry(c);
		if (err == 0)
			return;
		if (err != -EAGAIN) {
			conn_close(c, err, c->why ? c->why : "tunnel", true);
			worker_defer_put(c->w, c);
			return;
		}
	}
	if (code != NGHTTP2_NO_ERROR) {
		conn_close(c, -ECONNRESET, "stream reset", true);
		worker_defer_put(c->w, c);
		return;
	}
	/* A clean close: both END_STREAMs went; the queue may still drain. */
	if (!c->connected) {
		conn_close(c, -ECONNRESET, "stream closed before the answer", true);
		worker_defer_put(c->w, c);
	}
}

static void hbone_release(struct conn *c, unsigned d)
{
	struct pump_dir *pd = &c->dir[d];
	drop_buffer(c, pd);
	while (pd->q_head) {
		struct chunk *k = pd->q_head;
		pd->q_head = k->next;
		free(k);
	}
	pd->q_tail = NULL;
	if (d == 0 && c->tunnel)
		tunnel_detach(c->tunnel, c, c->reset || !(c->dir[0].flags & c->dir[1].flags & DIR_EOF));
}

const struct pump_ops pump_hbone_ops = {
	.name = "hbone",
	.run = hbone_run,
	.on_in = hbone_on_in,
	.on_out = hbone_on_out,
	.release = hbone_release,
};
