/*
 * sandbox/ids.c - the host ids of the sandbox: the range root and the users
 * inside map to, and the maps written for a user namespace.
 *
 * upaas runs as real root, so it writes uid_map and gid_map itself (no
 * newuidmap). The range is the one a Debian system user `upaas` gets from
 * adduser (its subordinate ids in /etc/subuid and /etc/subgid), so that no
 * other user, container or human holds those ids; an admin may name the
 * base ids instead. Without either, a fixed range far above the ids of
 * users is used, and upaas says so once.
 */
#define UPAAS_SANDBOX_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/sandbox-int.h"

void sb_str_add(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(dst);
	while (*s && n + 1 < cap)
		dst[n++] = *s++;
	dst[n] = '\0';
}

void sb_str_addu(char *dst, size_t cap, unsigned long v)
{
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(digits));
	size_t len = strlen(dst);
	while (n > 0 && len + 1 < cap)
		dst[len++] = digits[--n];
	dst[len] = '\0';
}

int sb_write_proc(pid_t pid, const char *file, const char *s)
{
	char path[64] = "/proc/";
	sb_str_addu(path, sizeof(path), (unsigned long)pid);
	sb_str_add(path, sizeof(path), "/");
	sb_str_add(path, sizeof(path), file);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s);
	ssize_t w = write(fd, s, len);
	int r = w < 0 ? -errno : (size_t)w == len ? 0 : -EIO;
	close(fd);
	return r;
}

int sb_subid_lookup(const char *file, const char *user, uid_t uid, uint32_t need,
		    uint32_t *ret_base)
{
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	if (!f)
		return -errno;
	char line[512];
	char uidstr[24] = "";
	sb_str_addu(uidstr, sizeof(uidstr), uid);
	while (fgets(line, sizeof(line), f)) {
		/* name:start:count */
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		c2[strcspn(c2 + 1, " \t\r\n") + 1] = '\0';
		if (strcmp(line, user) && (uid == (uid_t)-1 || strcmp(line, uidstr)))
			continue;
		int64_t start, count;
		if (parse_int64(c1 + 1, 1, UINT32_MAX, &start) < 0 ||
		    parse_int64(c2 + 1, 1, UINT32_MAX, &count) < 0)
			continue;
		/* the last id, (uid_t)-1, is never valid */
		if (count < need || start + need > (int64_t)UINT32_MAX)
			continue;
		*ret_base = (uint32_t)start;
		return 0;
	}
	return -ENOENT;
}

int sb_map_text(const struct sandbox_idmap *m, size_t n, char *out, size_t cap)
{
	if (!n)
		return -EINVAL;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		sb_str_addu(out, cap, m[i].inside);
		sb_str_add(out, cap, " ");
		sb_str_addu(out, cap, m[i].outside);
		sb_str_add(out, cap, " ");
		sb_str_addu(out, cap, m[i].count);
		sb_str_add(out, cap, "\n");
	}
	return strlen(out) + 1 < cap ? 0 : -E2BIG;
}

void sb_helper_ids(const char *user, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd *pw = getpwnam(user);
	if (!pw || pw->pw_uid == 0)
		pw = getpwnam("nobody");
	*ret_uid = pw ? pw->pw_uid : 65534;
	*ret_gid = pw ? pw->pw_gid : 65534;
}

void sandbox_range_get(const struct sandbox_policy *p, struct sandbox_range *ret)
{
	static struct sandbox_range cached;
	static char *cached_key;
	const char *user = p && p->user ? p->user : "upaas";
	int64_t uid_base = p ? p->uid_base : 0;
	int64_t gid_base = p ? p->gid_base : 0;
	_cleanup_free_ char *key = xasprintf("%s:%lld:%lld", user, (long long)uid_base,
					     (long long)gid_base);

	if (cached_key && !strcmp(cached_key, key)) {
		*ret = cached;
		return;
	}
	struct sandbox_range r = { 0 };
	sb_helper_ids(user, &r.helper_uid, &r.helper_gid);
	struct passwd *pw = getpwnam(user);
	uid_t uid = pw ? pw->pw_uid : (uid_t)-1;
	uint32_t base;

	if (uid_base > 0) {
		r.uid_base = (uid_t)uid_base;
	} else if (sb_subid_lookup("/etc/subuid", user, uid, SANDBOX_RANGE_SIZE, &base) == 0) {
		r.uid_base = base;
	} else {
		r.uid_base = SANDBOX_FALLBACK_BASE;
		r.fallback = true;
	}
	if (gid_base > 0)
		r.gid_base = (gid_t)gid_base;
	else if (uid_base > 0)
		r.gid_base = (gid_t)uid_base;
	else if (sb_subid_lookup("/etc/subgid", user, uid, SANDBOX_RANGE_SIZE, &base) == 0)
		r.gid_base = base;
	else {
		r.gid_base = SANDBOX_FALLBACK_BASE;
		r.fallback = true;
	}
	if (r.fallback)
		log_warn("sandbox: user '%s' has no range of %u ids in /etc/subuid and /etc/subgid "
			 "and sandbox.uid_base is not set: root in the sandbox is host uid %u, gid %u "
			 "(see sandbox in upaas.cfg(5))", user, SANDBOX_RANGE_SIZE,
			 (unsigned)r.uid_base, (unsigned)r.gid_base);
	free(cached_key);
	cached_key = TAKE_PTR(key);
	cached = r;
	*ret = r;
}

void sandbox_map_range(struct sandbox *sb, const struct sandbox_range *r)
{
	sb->uid_map[0] = (struct sandbox_idmap){ 0, (uint32_t)r->uid_base, SANDBOX_RANGE_SIZE };
	sb->gid_map[0] = (struct sandbox_idmap){ 0, (uint32_t)r->gid_base, SANDBOX_RANGE_SIZE };
	sb->n_uid_map = sb->n_gid_map = 1;
	sb->helper_uid = r->helper_uid;
	sb->helper_gid = r->helper_gid;
}

int sandbox_map_id(struct sandbox *sb, uid_t inside_uid, uid_t host_uid, gid_t inside_gid,
		   gid_t host_gid)
{
	if (sb->n_uid_map >= SANDBOX_IDMAP_MAX || sb->n_gid_map >= SANDBOX_IDMAP_MAX)
		return -E2BIG;
	sb->uid_map[sb->n_uid_map++] = (struct sandbox_idmap){ inside_uid, host_uid, 1 };
	sb->gid_map[sb->n_gid_map++] = (struct sandbox_idmap){ inside_gid, host_gid, 1 };
	return 0;
}

static int64_t map_id(const struct sandbox_idmap *m, size_t n, uint32_t inside)
{
	for (size_t i = 0; i < n; i++)
		if (inside >= m[i].inside && inside - m[i].inside < m[i].count)
			return (int64_t)m[i].outside + (inside - m[i].inside);
	return -1;
}

int64_t sandbox_host_uid(const struct sandbox *sb, uid_t inside)
{
	return map_id(sb->uid_map, sb->n_uid_map, inside);
}

int64_t sandbox_host_gid(const struct sandbox *sb, gid_t inside)
{
	return map_id(sb->gid_map, sb->n_gid_map, inside);
}
