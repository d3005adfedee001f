/*
 * An op is one in-flight io_uring request, embedded in the object that owns
 * it (listener, connection, worker). The SQE's user_data is the op's
 * address; the worker's CQE dispatcher switches on op->type and uses
 * container_of to get the owner back. An owner counts its in-flight ops and
 * is freed only after it has seen every completion.
 *
 * user_data 0 marks completions nobody waits for (cancel requests).
 */
#ifndef ZRING_OP_H
#define ZRING_OP_H

#include <stdint.h>

enum op_type {
	OP_NONE = 0,
	OP_ACCEPT,		/* listener: multishot accept */
	OP_ACCEPT_RETRY,	/* listener: timer to re-arm after EMFILE */
	OP_WAKE,		/* worker: eventfd read, a control message */
	OP_TICK,		/* worker: periodic timer (idle, drain) */
	OP_CONNECT,		/* conn: upstream connect */
	OP_CONNECT_TIMEOUT,	/* conn: linked timeout of the connect */
	OP_PUMP_IN,		/* conn direction: recv or poll-in on the source */
	OP_PUMP_OUT,		/* conn direction: send or poll-out on the sink */
	OP_CTL_SIGNAL,		/* control: signalfd readable */
	OP_CTL_DONE,		/* control: a worker ended */
	OP_WATCH_EVENT,		/* watch: inotify readable */
	OP_WATCH_DEBOUNCE,	/* watch: debounce timer */
	OP_WATCH_CERTS,		/* watch: certificate poll timer */
	OP_WATCH_LOADED,	/* watch: the loader thread finished a snapshot */
	OP_TUNNEL_CONNECT,	/* tunnel: connect to the peer's 15008 */
	OP_TUNNEL_CONNECT_TIMEOUT,
	OP_TUNNEL_RECV,		/* tunnel: ciphertext in */
	OP_TUNNEL_SEND,		/* tunnel: ciphertext out */
	OP_HTTP_ACCEPT,		/* http server (control thread): multishot accept */
	OP_HTTP_ACCEPT_RETRY,	/* http server: timer to re-arm after EMFILE */
	OP_HTTP_RECV,		/* http client: request bytes in */
	OP_HTTP_RECV_TIMEOUT,	/* http client: linked timeout of the recv */
	OP_HTTP_SEND,		/* http client: response bytes out */
	OP_HTTP_SEND_TIMEOUT,	/* http client: linked timeout of the send */
};

struct op {
	uint8_t type;
	uint8_t idx;		/* which half of the owner (pump direction) */
};

static inline void op_init(struct op *op, enum op_type type, uint8_t idx)
{
	op->type = (uint8_t)type;
	op->idx = idx;
}

#endif
