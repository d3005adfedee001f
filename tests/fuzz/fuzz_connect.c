/*
 * libFuzzer target for inbound HBONE request handling: bytes go into a real
 * nghttp2 server session (as they would after TLS), whose header callbacks
 * feed zring's CONNECT parser and validator. With the first byte odd, the
 * input is instead split into name/value pairs fed to the parser directly,
 * which reaches odd headers faster than HPACK-encoded frames.
 */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zring/hbone_request.h"

static struct hbone_req req;

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	hbone_req_header(&req, (const char *)name, nlen, (const char *)value, vlen);
	return 0;
}

static int on_begin(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	hbone_req_init(&req);
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	if (f->hd.type == NGHTTP2_HEADERS && hbone_req_finish(&req) == 0) {
		char buf[ADDR_STRLEN];
		addr_format(&req.authority, buf, sizeof(buf));
	}
	return 0;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *d, size_t n, int f, void *ud)
{
	return (ssize_t)n;
}

static void via_nghttp2(const uint8_t *data, size_t size)
{
	static const char preface[] = NGHTTP2_CLIENT_MAGIC;
	nghttp2_session_callbacks *cbs;
	nghttp2_session *s;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
	nghttp2_session_callbacks_set_send_callback(cbs, on_send);
	nghttp2_session_server_new(&s, cbs, NULL);
	nghttp2_session_mem_recv(s, (const uint8_t *)preface, sizeof(preface) - 1);
	nghttp2_session_mem_recv(s, data, size);
	nghttp2_session_send(s);
	nghttp2_session_del(s);
	nghttp2_session_callbacks_del(cbs);
}

/* name \0 value \0 name \0 value ... */
static void direct(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	hbone_req_init(&req);
	while (p < end) {
		const char *n = p, *nz = memchr(p, '\0', (size_t)(end - p));
		if (!nz)
			break;
		const char *v = nz + 1, *vz = v < end ? memchr(v, '\0', (size_t)(end - v)) : NULL;
		size_t vlen = vz ? (size_t)(vz - v) : (size_t)(end - v);
		hbone_req_header(&req, n, (size_t)(nz - n), v, vlen);
		p = vz ? vz + 1 : end;
	}
	hbone_req_finish(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		direct(data + 1, size - 1);
	else
		via_nghttp2(data + 1, size - 1);
	return 0;
}
