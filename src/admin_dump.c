/*
 * GET /config_dump: the snapshot zring routes with, as JSON. The "config"
 * member is config_to_json's (it loads again as a workload file); around
 * it, what the snapshot adds: its version, when and from where it was
 * loaded, the file's warnings (what is valid but worth a look), and the
 * certificates' identities and validity (never a key).
 *
 * The document is written piece by piece (admin_dump_next): first the
 * snapshot's own members, then "config" one workload, service and policy
 * at a time, each built and printed on its own. So a config of any size
 * costs the size of one piece in memory, and the control thread, which
 * sends the pieces as the client reads them, does one piece of work at a
 * time between its other requests. The text is cJSON's formatted print of
 * the whole document, with "config" as the last member.
 * See include/zring/admin.h.
 */
#include "zring/admin.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *admin_rfc3339(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, len, "invalid");
		return buf;
	}
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ms % 1000)
		snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
	else
		snprintf(buf + n, len - n, "Z");
	return buf;
}

static bool add(cJSON *o, const char *key, cJSON *item)
{
	if (item && cJSON_AddItemToObject(o, key, item))
		return true;
	cJSON_Delete(item);
	return false;
}

static bool add_time(cJSON *o, const char *key, uint64_t ms)
{
	char buf[40];
	return add(o, key, ms ? cJSON_CreateString(admin_rfc3339(ms, buf, sizeof(buf))) :
				cJSON_CreateNull());
}

static cJSON *identity_json(const struct local_identity *id)
{
	cJSON *o = cJSON_CreateObject();
	if (o && add(o, "identity", cJSON_CreateString(id->id)) &&
	    add(o, "trustDomain", cJSON_CreateString(id->trust_domain)) &&
	    add_time(o, "notBefore", id->not_before_ms) &&
	    add_time(o, "notAfter", id->not_after_ms))
		return o;
	cJSON_Delete(o);
	return NULL;
}

static cJSON *certs_json(const struct certstore *cs)
{
	if (!cs)
		return cJSON_CreateNull();
	char path[4096];
	snprintf(path, sizeof(path), "%s/root-cert.pem", cs->dir);
	cJSON *o = cJSON_CreateObject(), *ids = NULL;
	bool ok = o && add(o, "trustBundle", cJSON_CreateString(path)) &&
		  add(o, "refused", cJSON_CreateNumber(cs->rejected)) &&
		  add(o, "identities", ids = cJSON_CreateArray());
	for (size_t i = 0; ok && i < cs->n; i++) {
		cJSON *id = identity_json(&cs->ids[i]);
		ok = id && cJSON_AddItemToArray(ids, id);
		if (!ok)
			cJSON_Delete(id);
	}
	if (ok)
		return o;
	cJSON_Delete(o);
	return NULL;
}

/* The snapshot's warnings: [{"line", "column", "path", "message"}], and
 * how many were found in all (more than are kept past 100). */
static cJSON *warnings_json(const struct config *cfg)
{
	cJSON *a = cJSON_CreateArray();
	bool ok = a != NULL;
	for (size_t i = 0; ok && i < cfg->nwarnings; i++) {
		const struct config_error *w = &cfg->warnings[i];
		cJSON *o = cJSON_CreateObject();
		ok = o && add(o, "line", cJSON_CreateNumber(w->line)) &&
		     add(o, "column", cJSON_CreateNumber(w->col)) &&
		     add(o, "path", cJSON_CreateString(w->path)) &&
		     add(o, "message", cJSON_CreateString(w->msg)) && cJSON_AddItemToArray(a, o);
		if (!ok)
			cJSON_Delete(o);
	}
	if (ok)
		return a;
	cJSON_Delete(a);
	return NULL;
}

/* The document's members but "config" (written after them, piece by
 * piece); with no snapshot, the whole document. */
static cJSON *dump_json(const struct snapshot *s)
{
	cJSON *root = cJSON_CreateObject();
	if (!root)
		return NULL;
	bool ok;
	if (!s) {
		ok = add(root, "version", cJSON_CreateNumber(0)) &&
		     add(root, "config", cJSON_CreateNull());
	} else {
		const char *src = s->cfg->source;
		ok = add(root, "version", cJSON_CreateNumber((double)s->version)) &&
		     add_time(root, "loadedAt", s->loaded_at_ms) &&
		     add(root, "source", src && *src ? cJSON_CreateString(src) :
						       cJSON_CreateNull()) &&
		     add(root, "warningsTotal", cJSON_CreateNumber((double)s->cfg->warnings_total)) &&
		     add(root, "warnings", warnings_json(s->cfg)) &&
		     add(root, "certificates", certs_json(s->certs));
	}
	if (ok)
		return root;
	cJSON_Delete(root);
	return NULL;
}

/* ---- the document, piece by piece ---- */

enum dump_part {
	PART_HEAD,		/* the snapshot's members, then "config" opened */
	PART_WORKLOADS,		/* one item per step, then the list closed */
	PART_SERVICES,
	PART_POLICIES,
	PART_DONE,
};

struct admin_dump {
	struct snapshot *s;	/* NULL: nothing loaded */
	enum dump_part part;
	size_t i;		/* the part's next item */
};

/* What follows each list: the next list's opening, or the document's end. */
static const char *const part_close[] = {
	[PART_WORKLOADS] = "],\n\t\t\"services\":\t[",
	[PART_SERVICES] = "],\n\t\t\"policies\":\t[",
	[PART_POLICIES] = "]\n\t}\n}\n",
};

static int write_head(struct admin_dump *d, struct strbuf *out)
{
	cJSON *root = dump_json(d->s);
	char *text = root ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	size_t n = strlen(text);
	if (!d->s) {
		strbuf_add(out, text, n);
		strbuf_puts(out, "\n");
		d->part = PART_DONE;
	} else {
		/* Reopen the printed object ("...\n}") for "config". */
		strbuf_add(out, text, n >= 2 ? n - 2 : 0);
		strbuf_puts(out, ",\n\t\"config\":\t{\n\t\t\"workloads\":\t[");
		d->part = PART_WORKLOADS;
		d->i = 0;
	}
	free(text);
	return out->err;
}

/* Item i of the current part, or NULL once out of memory. */
static cJSON *item_json(const struct admin_dump *d)
{
	const struct config *c = d->s->cfg;
	switch (d->part) {
	case PART_WORKLOADS:
		return config_workload_to_json(&c->workloads[d->i]);
	case PART_SERVICES:
		return config_service_to_json(&c->services[d->i]);
	default:
		return config_policy_to_json(&c->policies[d->i]);
	}
}

static size_t part_count(const struct admin_dump *d)
{
	const struct config *c = d->s->cfg;
	return d->part == PART_WORKLOADS ? c->nworkloads :
	       d->part == PART_SERVICES  ? c->nservices : c->npolicies;
}

/* One list item, printed as it sits in the document: three levels deep. */
static int write_item(struct admin_dump *d, struct strbuf *out)
{
	cJSON *item = item_json(d);
	char *text = item ? cJSON_Print(item) : NULL;
	cJSON_Delete(item);
	if (!text)
		return -ENOMEM;
	if (d->i)
		strbuf_puts(out, ", ");
	const char *p = text, *nl;
	while ((nl = strchr(p, '\n'))) {
		strbuf_add(out, p, (size_t)(nl - p) + 1);
		strbuf_puts(out, "\t\t\t");
		p = nl + 1;
	}
	strbuf_puts(out, p);
	free(text);
	d->i++;
	return out->err;
}

static int step(struct admin_dump *d, struct strbuf *out)
{
	if (d->part == PART_HEAD)
		return write_head(d, out);
	if (d->i < part_count(d))
		return write_item(d, out);
	strbuf_puts(out, part_close[d->part]);
	d->part++;
	d->i = 0;
	return out->err;
}

int admin_dump_new(struct snapshot *s_take, struct admin_dump **out)
{
	struct admin_dump *d = calloc(1, sizeof(*d));
	if (!d) {
		snapshot_unref(s_take);
		return -ENOMEM;
	}
	d->s = s_take;
	*out = d;
	return 0;
}

int admin_dump_next(struct admin_dump *d, struct strbuf *out, size_t want)
{
	size_t start = out->len;
	while (d->part != PART_DONE && out->len - start < want) {
		int err = step(d, out);
		if (err < 0)
			return err;
	}
	return d->part != PART_DONE;
}

void admin_dump_free(struct admin_dump *d)
{
	if (!d)
		return;
	snapshot_unref(d->s);
	free(d);
}

int admin_config_dump(const struct snapshot *s, struct strbuf *out)
{
	/* The caller's reference is enough: this one is used and gone here. */
	struct admin_dump d = { .s = (struct snapshot *)s };
	int ret;
	while ((ret = admin_dump_next(&d, out, SIZE_MAX)) > 0)
		;
	return ret < 0 ? ret : out->err;
}
