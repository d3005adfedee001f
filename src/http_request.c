/*
 * The socket-free half of the HTTP server: reading a request with
 * http_parser, routing it, decoding its query, formatting the response.
 * See include/zring/http.h.
 */
#include "zring/http.h"
#include "zring/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct http_reader *reader_of(http_parser *p)
{
	return p->data;
}

static int on_message_begin(http_parser *p)
{
	struct http_reader *r = reader_of(p);
	strbuf_reset(&r->target);
	r->body_len = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);
	if (r->target.len + len > HTTP_MAX_TARGET) {
		r->status = 414;
		return -1;
	}
	strbuf_add(&r->target, at, len);
	return r->target.err ? -1 : 0;
}

/* These endpoints take no body: refuse a big one before it arrives. */
static int on_headers_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);
	if (p->content_length != ULLONG_MAX && p->content_length > HTTP_MAX_BODY) {
		r->status = 413;
		return -1;
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_reader *r = reader_of(p);
	r->body_len += len;
	if (r->body_len > HTTP_MAX_BODY) {
		r->status = 413;
		return -1;
	}
	return 0;
}

/* One request at a time: pause here, so that pipelined bytes after it stay
 * unparsed until its response is out. */
static int on_message_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);
	r->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_reader_init(struct http_reader *r)
{
	memset(r, 0, sizeof(*r));
	/* A process-wide setting of the library; we are its only user. */
	http_parser_set_max_header_size(HTTP_MAX_HEADER);
	http_parser_init(&r->parser, HTTP_REQUEST);
	r->parser.data = r;
	strbuf_init(&r->target);
}

void http_reader_deinit(struct http_reader *r)
{
	strbuf_deinit(&r->target);
	free(r->path);
	r->path = NULL;
}

static unsigned method_bit(unsigned m)
{
	switch (m) {
	case HTTP_GET:
		return HTTP_M_GET;
	case HTTP_HEAD:
		return HTTP_M_HEAD;
	case HTTP_POST:
		return HTTP_M_POST;
	case HTTP_PUT:
		return HTTP_M_PUT;
	case HTTP_DELETE:
		return HTTP_M_DELETE;
	default:
		return HTTP_M_OTHER;
	}
}

/* Split the target into path and query (origin or absolute form). */
static int finish(struct http_reader *r)
{
	struct http_parser_url u;
	const char *t = r->target.buf ? r->target.buf : "";
	http_parser_url_init(&u);
	if (http_parser_parse_url(t, r->target.len, r->parser.method == HTTP_CONNECT, &u) != 0)
		return 400;
	size_t plen = (u.field_set & (1u << UF_PATH)) ? u.field_data[UF_PATH].len : 0;
	size_t qlen = (u.field_set & (1u << UF_QUERY)) ? u.field_data[UF_QUERY].len : 0;
	char *p = malloc(plen + qlen + 2);
	if (!p)
		return -ENOMEM;
	memcpy(p, t + u.field_data[UF_PATH].off, plen);
	p[plen] = '\0';
	memcpy(p + plen + 1, t + u.field_data[UF_QUERY].off, qlen);
	p[plen + 1 + qlen] = '\0';
	free(r->path);
	r->path = p;
	r->req = (struct http_request){
		.method = method_bit(r->parser.method),
		.path = p,
		.query = p + plen + 1,
		.http_minor = r->parser.http_minor,
	};
	return 1;
}

int http_reader_feed(struct http_reader *r, const char *buf, size_t len, size_t *used)
{
	*used = 0;
	if (r->done)
		return 1;
	if (len == 0)
		return 0;	/* http_parser takes 0 bytes as EOF */
	*used = http_parser_execute(&r->parser, &settings, buf, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
	if (r->target.err)
		return -ENOMEM;
	if (r->status)
		return r->status;
	if (e == HPE_PAUSED && r->done)
		return finish(r);
	if (e == HPE_HEADER_OVERFLOW)
		return 431;
	if (e != HPE_OK)
		return 400;
	return 0;
}

void http_reader_next(struct http_reader *r)
{
	r->done = false;
	r->status = 0;
	r->body_len = 0;
	strbuf_reset(&r->target);
	http_parser_pause(&r->parser, 0);
}

bool http_reader_keep_alive(const struct http_reader *r)
{
	const http_parser *p = &r->parser;
	if (p->http_major != 1 || p->http_minor == 0 || p->upgrade)
		return false;
	return http_should_keep_alive(p) != 0;
}

const struct http_route *http_route_find(const struct http_route *routes, const char *path,
					 unsigned method, int *status, unsigned *allow)
{
	*allow = 0;
	for (const struct http_route *rt = routes; rt && rt->path; rt++) {
		if (strcmp(rt->path, path) != 0)
			continue;
		unsigned m = rt->methods | (rt->methods & HTTP_M_GET ? HTTP_M_HEAD : 0);
		if (m & method)
			return rt;
		*allow |= m;
	}
	*status = *allow ? 405 : 404;
	return NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode n bytes of a query value into out. */
static int decode(const char *s, size_t n, char *out, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (n - i < 3)
				return -EINVAL;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -EINVAL;	/* a bad escape, or %00 */
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= len)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

int http_query_get(const char *query, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);
	const char *p = query;
	while (p && *p) {
		const char *end = strchr(p, '&');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n >= klen && strncmp(p, key, klen) == 0 && (n == klen || p[klen] == '=')) {
			const char *v = n == klen ? p + n : p + klen + 1;
			return decode(v, (size_t)(p + n - v), out, len);
		}
		p = end ? end + 1 : NULL;
	}
	return -ENOENT;
}

const char *http_reason(int status)
{
	const char *s = http_status_str((enum http_status)status);
	return s && *s != '<' ? s : "Unknown";
}

const char *http_methods_format(unsigned methods, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ HTTP_M_GET, "GET" }, { HTTP_M_HEAD, "HEAD" }, { HTTP_M_POST, "POST" },
		{ HTTP_M_PUT, "PUT" }, { HTTP_M_DELETE, "DELETE" },
	};
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(names) && o < len; i++)
		if (methods & names[i].bit)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "",
					      names[i].name);
	return buf;
}

void http_response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	resp->http_minor = 1;
	strbuf_init(&resp->body);
}

void http_response_deinit(struct http_response *resp)
{
	strbuf_deinit(&resp->body);
	if (resp->src.free)
		resp->src.free(resp->src.ctx);
	resp->src = (struct http_body_src){ 0 };
}

int http_response_format(const struct http_response *resp, unsigned method,
			 bool keep_alive, struct strbuf *out)
{
	if (resp->body.err)
		return resp->body.err;
	strbuf_printf(out, "HTTP/1.1 %d %s\r\n", resp->status, http_reason(resp->status));
	strbuf_printf(out, "Content-Type: %s\r\n",
		      resp->content_type ? resp->content_type : "text/plain; charset=utf-8");
	if (!resp->src.next)
		strbuf_printf(out, "Content-Length: %zu\r\n", resp->body.len);
	else if (resp->http_minor >= 1)
		strbuf_puts(out, "Transfer-Encoding: chunked\r\n");
	strbuf_puts(out, "Cache-Control: no-store\r\n");
	if (resp->retry_after)
		strbuf_printf(out, "Retry-After: %u\r\n", resp->retry_after);
	if (resp->status == 405) {
		char allow[64];
		strbuf_printf(out, "Allow: %s\r\n",
			      http_methods_format(resp->allow, allow, sizeof(allow)));
	}
	if (!keep_alive)
		strbuf_puts(out, "Connection: close\r\n");
	strbuf_puts(out, "\r\n");
	if (method != HTTP_M_HEAD && resp->body.len && !resp->src.next)
		strbuf_add(out, resp->body.buf, resp->body.len);
	return out->err;
}
