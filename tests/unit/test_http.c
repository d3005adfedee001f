/*
 * The HTTP server's socket-free half: reading requests (what a client may
 * send, including abuse), routing, query decoding, response formatting.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zring/http.h"

/* Feed all of s (in chunks of `step` bytes, 0 = at once); returns the
 * reader's verdict and the bytes consumed. */
static int feed(struct http_reader *r, const char *s, size_t len, size_t step, size_t *consumed)
{
	size_t off = 0;
	int ret = 0;
	while (off < len) {
		size_t n = step && len - off > step ? step : len - off, used;
		ret = http_reader_feed(r, s + off, n, &used);
		off += used;
		if (ret != 0)
			break;
		cr_assert_eq(used, n, "bytes left over without a verdict");
	}
	*consumed = off;
	return ret;
}

static int feed_str(struct http_reader *r, const char *s)
{
	size_t used;
	return feed(r, s, strlen(s), 0, &used);
}

Test(http_reader, a_simple_get)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n"), 1);
	cr_assert_eq(r.req.method, HTTP_M_GET);
	cr_assert_str_eq(r.req.path, "/healthz/ready");
	cr_assert_str_eq(r.req.query, "");
	cr_assert(http_reader_keep_alive(&r), "HTTP/1.1 keeps the connection by default");
	http_reader_deinit(&r);
}

Test(http_reader, path_and_query_split)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "POST /logging?level=debug HTTP/1.1\r\n\r\n"), 1);
	cr_assert_eq(r.req.method, HTTP_M_POST);
	cr_assert_str_eq(r.req.path, "/logging");
	cr_assert_str_eq(r.req.query, "level=debug");
	http_reader_deinit(&r);
}

Test(http_reader, absolute_form_target)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET http://127.0.0.1:15000/config_dump?x=1 HTTP/1.1\r\n\r\n"), 1);
	cr_assert_str_eq(r.req.path, "/config_dump");
	cr_assert_str_eq(r.req.query, "x=1");
	http_reader_deinit(&r);
}

Test(http_reader, byte_by_byte)
{
	static const char req[] = "GET /config_dump HTTP/1.1\r\nHost: localhost\r\n"
				  "User-Agent: curl\r\n\r\n";
	struct http_reader r;
	size_t used;
	http_reader_init(&r);
	cr_assert_eq(feed(&r, req, sizeof(req) - 1, 1, &used), 1);
	cr_assert_eq(used, sizeof(req) - 1);
	cr_assert_str_eq(r.req.path, "/config_dump");
	http_reader_deinit(&r);
}

Test(http_reader, an_incomplete_request_waits)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET / HTTP/1.1\r\nHost: x\r\n"), 0);
	cr_assert_eq(feed_str(&r, "\r\n"), 1);
	http_reader_deinit(&r);
}

Test(http_reader, pipelined_requests_one_at_a_time)
{
	static const char two[] = "GET /a HTTP/1.1\r\n\r\nGET /b?q HTTP/1.1\r\n\r\n";
	struct http_reader r;
	size_t used;
	http_reader_init(&r);
	cr_assert_eq(http_reader_feed(&r, two, sizeof(two) - 1, &used), 1);
	cr_assert_str_eq(r.req.path, "/a");
	cr_assert_eq(used, strlen("GET /a HTTP/1.1\r\n\r\n"), "the second request is left");
	/* Until the first is answered, the reader takes nothing more. */
	size_t again;
	cr_assert_eq(http_reader_feed(&r, two + used, sizeof(two) - 1 - used, &again), 1);
	cr_assert_eq(again, 0);
	http_reader_next(&r);
	cr_assert_eq(http_reader_feed(&r, two + used, sizeof(two) - 1 - used, &again), 1);
	cr_assert_eq(used + again, sizeof(two) - 1);
	cr_assert_str_eq(r.req.path, "/b");
	cr_assert_str_eq(r.req.query, "q");
	http_reader_deinit(&r);
}

Test(http_reader, connection_close_and_http10_close)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 1);
	cr_assert_not(http_reader_keep_alive(&r));
	http_reader_deinit(&r);

	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET / HTTP/1.0\r\n\r\n"), 1);
	cr_assert_not(http_reader_keep_alive(&r));
	cr_assert_eq(r.req.http_minor, 0);
	http_reader_deinit(&r);

	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
	cr_assert_not(http_reader_keep_alive(&r), "HTTP/1.0 always closes");
	http_reader_deinit(&r);

	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "GET / HTTP/1.1\r\nConnection: Upgrade\r\n"
			      "Upgrade: websocket\r\n\r\n"), 1);
	cr_assert_not(http_reader_keep_alive(&r), "an upgrade is answered, then closed");
	http_reader_deinit(&r);
}

Test(http_reader, garbage_is_400)
{
	static const char *const bad[] = {
		"garbage\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",	/* a TLS ClientHello */
		"GET / HTTP/9.9.9\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"\r\n\r\n\r\nPOST",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_reader r;
		http_reader_init(&r);
		int ret = feed_str(&r, bad[i]);
		if (i == 5)	/* leading CRLFs are allowed; "POST" alone is incomplete */
			cr_expect_eq(ret, 0, "case %zu", i);
		else
			cr_expect_eq(ret, 400, "case %zu: %d", i, ret);
		http_reader_deinit(&r);
	}
}

static char *request_with_header(size_t value_len)
{
	const char *head = "GET / HTTP/1.1\r\nX-Big: ";
	char *s = malloc(strlen(head) + value_len + 5);
	strcpy(s, head);
	memset(s + strlen(head), 'a', value_len);
	strcpy(s + strlen(head) + value_len, "\r\n\r\n");
	return s;
}

Test(http_reader, headers_over_8k_are_431)
{
	struct http_reader r;
	char *ok = request_with_header(HTTP_MAX_HEADER - 200);
	char *big = request_with_header(HTTP_MAX_HEADER + 1);
	char *huge = request_with_header(64 * 1024);
	size_t used;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, ok), 1, "just under the cap is fine");
	http_reader_deinit(&r);
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, big), 431);
	http_reader_deinit(&r);
	http_reader_init(&r);
	cr_assert_eq(feed(&r, huge, strlen(huge), 1000, &used), 431);
	cr_assert_leq(used, HTTP_MAX_HEADER + 1000, "stops reading at the cap (%zu)", used);
	http_reader_deinit(&r);
	free(ok);
	free(big);
	free(huge);
}

Test(http_reader, long_target_is_414)
{
	struct http_reader r;
	char *s = malloc(HTTP_MAX_TARGET + 64);
	strcpy(s, "GET /");
	memset(s + 5, 'x', HTTP_MAX_TARGET);
	strcpy(s + 5 + HTTP_MAX_TARGET, " HTTP/1.1\r\n\r\n");
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, s), 414);
	http_reader_deinit(&r);
	free(s);
}

Test(http_reader, bodies_over_the_cap_are_413)
{
	struct http_reader r;
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "POST /quitquitquit HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"),
		     413, "refused from the header, before the body arrives");
	http_reader_deinit(&r);

	char chunked[2048 + 128];
	int n = snprintf(chunked, sizeof(chunked), "POST / HTTP/1.1\r\nTransfer-Encoding: "
			 "chunked\r\n\r\n800\r\n");
	memset(chunked + n, 'b', 2048);
	strcpy(chunked + n + 2048, "\r\n0\r\n\r\n");
	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, chunked), 413, "a chunked body is counted as it comes");
	http_reader_deinit(&r);

	http_reader_init(&r);
	cr_assert_eq(feed_str(&r, "POST /logging?level=info HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
			      "hello"), 1, "a small body is read and ignored");
	cr_assert_str_eq(r.req.path, "/logging");
	http_reader_deinit(&r);
}

Test(http_reader, methods)
{
	static const struct {
		const char *line;
		unsigned bit;
	} cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", HTTP_M_GET },
		{ "HEAD / HTTP/1.1\r\n\r\n", HTTP_M_HEAD },
		{ "POST / HTTP/1.1\r\n\r\n", HTTP_M_POST },
		{ "PUT / HTTP/1.1\r\n\r\n", HTTP_M_PUT },
		{ "DELETE / HTTP/1.1\r\n\r\n", HTTP_M_DELETE },
		{ "OPTIONS / HTTP/1.1\r\n\r\n", HTTP_M_OTHER },
		{ "PATCH / HTTP/1.1\r\n\r\n", HTTP_M_OTHER },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_reader r;
		http_reader_init(&r);
		cr_expect_eq(feed_str(&r, cases[i].line), 1, "%s", cases[i].line);
		cr_expect_eq(r.req.method, cases[i].bit, "%s", cases[i].line);
		http_reader_deinit(&r);
	}
}

/* ---- routing ---- */

static void h(void *arg, const struct http_request *req, struct http_response *resp)
{
}

static const struct http_route routes[] = {
	{ "/", HTTP_M_GET, h, "index" },
	{ "/logging", HTTP_M_GET | HTTP_M_POST, h, "level" },
	{ "/quitquitquit", HTTP_M_POST, h, "drain" },
	{ NULL, 0, NULL, NULL },
};

Test(http_route, exact_paths)
{
	int status = 0;
	unsigned allow;
	cr_assert_eq(http_route_find(routes, "/logging", HTTP_M_POST, &status, &allow), &routes[1]);
	cr_assert_eq(http_route_find(routes, "/", HTTP_M_GET, &status, &allow), &routes[0]);
	cr_assert_null(http_route_find(routes, "/logging/", HTTP_M_GET, &status, &allow));
	cr_assert_eq(status, 404);
	cr_assert_null(http_route_find(routes, "/nope", HTTP_M_GET, &status, &allow));
	cr_assert_eq(status, 404);
	cr_assert_null(http_route_find(routes, "", HTTP_M_GET, &status, &allow));
	cr_assert_eq(status, 404);
}

Test(http_route, wrong_method_is_405_with_allow)
{
	int status = 0;
	unsigned allow;
	cr_assert_null(http_route_find(routes, "/quitquitquit", HTTP_M_GET, &status, &allow));
	cr_assert_eq(status, 405);
	cr_assert_eq(allow, HTTP_M_POST);
	cr_assert_null(http_route_find(routes, "/logging", HTTP_M_DELETE, &status, &allow));
	cr_assert_eq(status, 405);
	cr_assert_eq(allow, HTTP_M_GET | HTTP_M_HEAD | HTTP_M_POST);
	cr_assert_null(http_route_find(routes, "/", HTTP_M_OTHER, &status, &allow));
	cr_assert_eq(status, 405);
}

Test(http_route, head_goes_where_get_does)
{
	int status;
	unsigned allow;
	cr_assert_eq(http_route_find(routes, "/", HTTP_M_HEAD, &status, &allow), &routes[0]);
	cr_assert_null(http_route_find(routes, "/quitquitquit", HTTP_M_HEAD, &status, &allow));
}

Test(http_route, an_empty_table_is_all_404)
{
	static const struct http_route none[] = { { NULL, 0, NULL, NULL } };
	int status;
	unsigned allow;
	cr_assert_null(http_route_find(none, "/metrics", HTTP_M_GET, &status, &allow));
	cr_assert_eq(status, 404);
}

/* ---- queries ---- */

Test(http_query, values)
{
	char v[32];
	cr_assert_eq(http_query_get("level=debug", "level", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "debug");
	cr_assert_eq(http_query_get("a=1&level=warn&b", "level", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "warn");
	cr_assert_eq(http_query_get("a=1&b", "b", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "", "a key without '=' has an empty value");
	cr_assert_eq(http_query_get("level=info&level=debug", "level", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "info", "the first one wins");
}

Test(http_query, absent_keys)
{
	char v[32];
	cr_assert_eq(http_query_get("", "level", v, sizeof(v)), -ENOENT);
	cr_assert_eq(http_query_get("levels=debug", "level", v, sizeof(v)), -ENOENT);
	cr_assert_eq(http_query_get("xlevel=debug", "level", v, sizeof(v)), -ENOENT);
	cr_assert_eq(http_query_get("lev=debug", "level", v, sizeof(v)), -ENOENT);
}

Test(http_query, decoding)
{
	char v[32];
	cr_assert_eq(http_query_get("level=%64%65bug", "level", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "debug");
	cr_assert_eq(http_query_get("x=a+b%2Bc", "x", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "a b+c");
	cr_assert_eq(http_query_get("x=%00", "x", v, sizeof(v)), -EINVAL, "no NUL smuggling");
	cr_assert_eq(http_query_get("x=%zz", "x", v, sizeof(v)), -EINVAL);
	cr_assert_eq(http_query_get("x=%4", "x", v, sizeof(v)), -EINVAL);
	cr_assert_eq(http_query_get("x=0123456789", "x", v, 8), -ENAMETOOLONG);
}

/* ---- responses ---- */

Test(http_response, status_headers_body)
{
	struct http_response resp;
	struct strbuf out;
	http_response_init(&resp);
	strbuf_init(&out);
	strbuf_puts(&resp.body, "ready\n");
	cr_assert_eq(http_response_format(&resp, HTTP_M_GET, true, &out), 0);
	cr_assert_str_eq(out.buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: 6\r\nCache-Control: no-store\r\n\r\nready\n");
	strbuf_deinit(&out);
	http_response_deinit(&resp);
}

Test(http_response, close_allow_and_head)
{
	struct http_response resp;
	struct strbuf out;
	http_response_init(&resp);
	strbuf_init(&out);
	resp.status = 405;
	resp.allow = HTTP_M_GET | HTTP_M_HEAD;
	resp.content_type = "application/json";
	strbuf_puts(&resp.body, "{}");
	cr_assert_eq(http_response_format(&resp, HTTP_M_HEAD, false, &out), 0);
	cr_assert_str_eq(out.buf, "HTTP/1.1 405 Method Not Allowed\r\n"
			 "Content-Type: application/json\r\nContent-Length: 2\r\n"
			 "Cache-Control: no-store\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n",
			 "HEAD: the length of the body that GET would send, and no body");
	strbuf_deinit(&out);
	http_response_deinit(&resp);
}

static int two_pieces(void *ctx, struct strbuf *out)
{
	unsigned *n = ctx;
	strbuf_puts(out, "piece");
	return ++*n < 2;
}

Test(http_response, a_body_written_as_it_is_sent_is_chunked_or_until_close)
{
	struct http_response resp;
	struct strbuf out;
	unsigned n = 0;
	http_response_init(&resp);
	strbuf_init(&out);
	resp.src = (struct http_body_src){ .next = two_pieces, .ctx = &n };
	cr_assert_eq(http_response_format(&resp, HTTP_M_GET, true, &out), 0);
	cr_assert_str_eq(out.buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n",
			 "the head only: the server sends the pieces as chunks");
	strbuf_reset(&out);
	resp.http_minor = 0;
	cr_assert_eq(http_response_format(&resp, HTTP_M_GET, false, &out), 0);
	cr_assert_str_eq(out.buf, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
			 "HTTP/1.0 takes no chunks: the body ends with the connection");
	cr_assert_eq(n, 0, "formatting writes no piece");
	strbuf_deinit(&out);
	http_response_deinit(&resp);
}

Test(http_response, reasons)
{
	cr_assert_str_eq(http_reason(200), "OK");
	cr_assert_str_eq(http_reason(404), "Not Found");
	cr_assert_str_eq(http_reason(413), "Payload Too Large");
	cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	cr_assert_str_eq(http_reason(503), "Service Unavailable");
	cr_assert_str_eq(http_reason(299), "Unknown");
}
