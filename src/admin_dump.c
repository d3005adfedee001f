/*
 * GET /config_dump: the snapshot zring routes with, as JSON. The "config"
 * member is config_to_json's (it loads again as a workload file); around
 * it, what the snapshot adds: its version, when and from where it was
 * loaded, the file's warnings (what is valid but worth a look), and the
 * certificates' identities and validity (never a key).
 * See include/zring/admin.h.
 */
#include "zring/admin.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
		     add(root, "config", config_to_json(s->cfg)) &&
		     add(root, "warningsTotal", cJSON_CreateNumber((double)s->cfg->warnings_total)) &&
		     add(root, "warnings", warnings_json(s->cfg)) &&
		     add(root, "certificates", certs_json(s->certs));
	}
	if (ok)
		return root;
	cJSON_Delete(root);
	return NULL;
}

int admin_config_dump(const struct snapshot *s, struct strbuf *out)
{
	cJSON *root = dump_json(s);
	char *text = root ? cJSON_Print(root) : NULL;
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	strbuf_puts(out, text);
	strbuf_puts(out, "\n");
	free(text);
	return out->err;
}
