/*
 * A listening socket owned by one worker, with a multishot accept.
 *
 * Each worker opens its own socket on the same address (SO_REUSEPORT), so
 * the kernel spreads connections across workers. When the process runs out
 * of descriptors, accepting pauses (the backlog keeps the clients) and
 * resumes on a timer or as soon as a connection frees its descriptors.
 */
#ifndef ZRING_LISTENER_H
#define ZRING_LISTENER_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "zring/addr.h"
#include "zring/op.h"

struct worker;
struct pod;

enum role { ROLE_OUTBOUND, ROLE_INBOUND, ROLE_HBONE };

const char *role_name(enum role r);

struct listener {
	struct worker *w;
	struct pod *pod;	/* node-agent mode: the pod it listens for (a reference) */
	int fd;
	enum role role;
	union addr addr;
	struct op op_accept;
	struct op op_retry;
	struct __kernel_timespec retry_ts;
	unsigned inflight;
	uint64_t warned_ns;	/* last "accept paused" line (rate limit) */
	bool accepting;		/* multishot accept armed */
	bool retry_armed;
	bool paused;		/* descriptor exhaustion */
	bool closing;
};

/*
 * Open, bind and listen (SO_REUSEPORT). The socket is created here so bind
 * errors surface at startup; accepting starts with listener_arm. Returns 0
 * and *out, or -errno. Only the socket is made here (in the calling
 * thread's network namespace), so another thread may open a listener for
 * a worker and hand it over; l->pod is the caller's to set.
 */
int listener_open(struct worker *w, enum role role, const union addr *addr,
		  struct listener **out);

/* Arm the multishot accept (no-op if armed, paused or closing). */
void listener_arm(struct listener *l);

/* Stop accepting and close: cancels the accept; listener_done is called
 * once no op is in flight. */
void listener_close(struct listener *l);

/* Out of descriptors: stop accepting and retry on a timer. The clients
 * wait in the kernel's backlog meanwhile. */
void listener_pause(struct listener *l, int err);

/* Retry after EMFILE now rather than when the timer fires. */
void listener_resume(struct listener *l);

void listener_on_accept(struct listener *l, const struct io_uring_cqe *cqe);
void listener_on_retry(struct listener *l, const struct io_uring_cqe *cqe);

/* Free a listener whose ops have all completed (or were never armed);
 * closes its socket and drops its pod reference. */
void listener_free(struct listener *l);

#endif
