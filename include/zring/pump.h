/*
 * The data pump: moves bytes both ways between a connection's two sockets
 * until both directions have ended.
 *
 * A connection has two directions: dir[0] reads the client and writes the
 * upstream, dir[1] the reverse. A direction ends on EOF, which becomes
 * shutdown(SHUT_WR) toward the other socket while the other direction keeps
 * flowing (half-close). A reset or error on either side ends the whole
 * connection, and a reset is passed on as a reset.
 *
 * Two interchangeable engines implement a direction (struct pump_ops):
 *   - splice: io_uring polls for readiness, then splice(2) moves the bytes
 *     socket -> pipe -> socket inside the kernel, with a pipe borrowed from
 *     the worker's bounded pool only while bytes are in it (small messages
 *     are copied with recv/send instead: cheaper under 16 KiB);
 *   - copy: io_uring recv into a provided buffer the kernel picks when data
 *     arrives, then io_uring send from it.
 * Both hold nothing but the two sockets while a connection is idle.
 */
#ifndef ZRING_PUMP_H
#define ZRING_PUMP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/op.h"

struct conn;
struct pipe_pair;

enum {
	DIR_EOF = 1u << 0,	/* source sent FIN; shutdown sent to the sink */
	DIR_WAITING = 1u << 1,	/* queued for a buffer or pipe */
	DIR_HAS_BUF = 1u << 2,	/* copy: holds buffer `bid` */
	DIR_EOF_SEEN = 1u << 3,	/* hbone: source ended, not yet passed on */
	DIR_SENDING = 1u << 4,	/* hbone: a send from the queue is in flight */
	DIR_BULK = 1u << 5,	/* splice: reads come in big chunks, skip the copy path */
};

/* hbone: stream bytes waiting for the socket. */
struct chunk {
	struct chunk *next;
	uint32_t cap;		/* bytes allocated in data */
	uint32_t len;		/* bytes filled */
	uint32_t off;		/* bytes already sent */
	uint8_t data[];
};

struct pump_dir {
	struct op op_in;	/* recv / poll-in on the source */
	struct op op_out;	/* send / poll-out on the sink */
	uint8_t flags;
	uint16_t bid;		/* copy: buffer held */
	uint32_t len;		/* copy: bytes in the buffer; splice: in the pipe */
	uint32_t off;		/* copy: bytes of it already sent */
	uint64_t bytes;		/* total moved to the sink */
	struct pipe_pair *pipe;	/* splice: borrowed pipe */
	struct pump_dir *wait_next;
	struct chunk *q_head, *q_tail;	/* hbone: stream -> socket */
};

struct pump_ops {
	const char *name;
	/* Start (or resume) moving bytes in direction d. */
	void (*run)(struct conn *c, unsigned d);
	void (*on_in)(struct conn *c, unsigned d, const struct io_uring_cqe *cqe);
	void (*on_out)(struct conn *c, unsigned d, const struct io_uring_cqe *cqe);
	/* Give back what the direction holds (buffer, pipe); on close. */
	void (*release)(struct conn *c, unsigned d);
};

extern const struct pump_ops pump_splice_ops;
extern const struct pump_ops pump_copy_ops;

/* Start both directions of a connected conn. */
void pump_start(struct conn *c);

/* Dispatch a CQE for op_in / op_out of direction op->idx. */
void pump_on_in(struct conn *c, struct op *op, const struct io_uring_cqe *cqe);
void pump_on_out(struct conn *c, struct op *op, const struct io_uring_cqe *cqe);

/* Resume a direction that waited for a buffer or pipe. */
void pump_resume(struct pump_dir *d);

/* Release what both directions hold; called once when the conn is freed. */
void pump_release(struct conn *c);

/* --- shared by the engines --- */

/* Source of d hit EOF: half-close toward the sink, end the conn if both
 * directions are done. */
void pump_dir_eof(struct conn *c, unsigned d);

/* An I/O error `err` (negative errno) on socket `side` (SIDE_CLIENT or
 * SIDE_UPSTREAM): end the connection with RST toward both, so a reset is
 * passed on as a reset and a broken stream never looks like a clean end. */
void pump_dir_error(struct conn *c, unsigned side, int err);

/* Provided-buffer helpers shared by the copy and hbone engines: arm a recv
 * on `fd` whose buffer the kernel picks when bytes arrive; take the buffer
 * a completion carries; give a held buffer back (and wake a waiter). */
void pump_arm_recv(struct conn *c, unsigned d, int fd);
void pump_take_buffer(struct conn *c, unsigned d, const struct io_uring_cqe *cqe);
void pump_drop_buffer(struct conn *c, unsigned d);

/* Bytes moved in direction d (also marks c active: conn_touch). */
void pump_dir_moved(struct conn *c, unsigned d, uint32_t n);

#endif
