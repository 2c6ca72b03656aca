/*
 * serve/static.c - the dashboard's files from serve.web_dir: one directory,
 * no subdirectories, names of [A-Za-z0-9._-] not starting with a dot,
 * opened with openat(O_NOFOLLOW) below the directory's fd (no traversal,
 * no symlinks), known types only. Cache-Control: no-cache with an ETag, so
 * an upgrade shows at once and an unchanged file costs a 304.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/serve-int.h"

/* The dashboard talks only to this server; no inline script or style. */
#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; " \
	"frame-ancestors 'none'"

static const struct {
	const char *ext;
	const char *type;
} types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".ico", "image/x-icon" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".woff2", "font/woff2" },
};

static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < ARRAY_SIZE(types); i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return NULL;
}

static bool name_ok(const char *name)
{
	if (!*name || name[0] == '.' || strlen(name) > 128)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
			return false;
	return true;
}

enum MHD_Result static_handle(struct req *r, const char *path)
{
	struct server *s = r->srv;
	if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
		return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
	const char *name = path[0] == '/' ? path + 1 : path;
	if (!*name)
		name = "index.html";
	const char *type = type_of(name);
	if (!name_ok(name) || !type || s->web_fd < 0)
		return reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	int fd = openat(s->web_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return reply_error(r, MHD_HTTP_NOT_FOUND, "not found");
	}
	char etag[64];
	snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec, (unsigned long long)st.st_mtim.tv_nsec);
	const char *inm = req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
	struct MHD_Response *resp;
	unsigned status = MHD_HTTP_OK;
	if (inm && !strcmp(inm, etag)) {
		close(fd);
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	return reply(r, status, resp);
}
