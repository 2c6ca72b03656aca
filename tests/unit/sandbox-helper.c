/*
 * tests/unit/sandbox-helper.c - sandbox_run() from the command line, for
 * tests/integration/sandbox.sh:
 *
 *   sandbox-helper --root DIR [--uid N [--gid N]] [--timeout SEC] [--network]
 *       [--hostname NAME] [--nofile N] [--nproc N] [--fsize N] [--as N]
 *       [--pids N] [--memory BYTES] [--cpu-weight N] [--deny SYSCALL]...
 *       [--range BASE] [--map IN:OUT]... [--bind HOST:TARGET[:rw]]... [--cwd DIR]
 *       [--env K=V]... [--log FILE] [--capture] [--private-mount DIR]
 *       [--pasta PATH] [--timing] [--repeat N] -- CMD [ARG...]
 *   sandbox-helper --shift-tree DIR --range BASE
 *   sandbox-helper --print-range
 *
 * --range BASE: root inside is host uid and gid BASE (0..65535 mapped);
 * without it (and without --map) the default range (sandbox_range_get()).
 * --map IN:OUT: one more id mapped, uid and gid (IN inside is OUT outside);
 * with --map and no --range only root (to BASE 0x10000000) and the --map ids.
 * --private-mount DIR: sandbox_private_mounts() (twice: it is idempotent),
 * then a tmpfs on DIR with a file "marker" in it, as a workspace would be
 * mounted before the sandbox runs.
 * --timing: prints the setup times of the run (sandbox_last_timing()) to
 * stderr; with --repeat N, runs the command N times and prints the means.
 * --shift-tree: adds BASE to every uid and gid below 65536 in DIR (lchown,
 * never following a symlink, set-id bits kept), as the root cache does;
 * ids already in the range stay.
 *
 * Exits with the command's status; on a sandbox error prints
 * "sandbox-helper: MESSAGE" and exits 125 (124 on timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "sandbox/sandbox.h"

static int64_t num(const char *s)
{
	int64_t v;
	if (parse_int64(s, 0, INT64_MAX, &v) < 0) {
		fprintf(stderr, "sandbox-helper: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static uint32_t shift_base;
static int shift_err;

static int shift_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	uid_t u = st->st_uid;
	gid_t g = st->st_gid;
	if (u < SANDBOX_RANGE_SIZE)
		u += shift_base;
	if (g < SANDBOX_RANGE_SIZE)
		g += shift_base;
	if ((u < shift_base || u - shift_base >= SANDBOX_RANGE_SIZE) ||
	    (g < shift_base || g - shift_base >= SANDBOX_RANGE_SIZE)) {
		fprintf(stderr, "sandbox-helper: '%s' is owned by %u:%u, outside the range\n", path,
			(unsigned)st->st_uid, (unsigned)st->st_gid);
		shift_err = 1;
		return 0;
	}
	if (u == st->st_uid && g == st->st_gid)
		return 0;
	if (lchown(path, u, g) < 0 ||
	    (!S_ISLNK(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID)) &&
	     chmod(path, st->st_mode & 07777) < 0)) {
		perror(path);
		shift_err = 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "uid", required_argument, NULL, 'u' },
		{ "gid", required_argument, NULL, 'g' },
		{ "timeout", required_argument, NULL, 't' },
		{ "network", no_argument, NULL, 'n' },
		{ "hostname", required_argument, NULL, 'h' },
		{ "nofile", required_argument, NULL, 'F' },
		{ "nproc", required_argument, NULL, 'P' },
		{ "fsize", required_argument, NULL, 'S' },
		{ "as", required_argument, NULL, 'A' },
		{ "bind", required_argument, NULL, 'b' },
		{ "cwd", required_argument, NULL, 'c' },
		{ "env", required_argument, NULL, 'e' },
		{ "log", required_argument, NULL, 'l' },
		{ "capture", no_argument, NULL, 'C' },
		{ "private-mount", required_argument, NULL, 'M' },
		{ "pids", required_argument, NULL, 'p' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpu-weight", required_argument, NULL, 'w' },
		{ "deny", required_argument, NULL, 'd' },
		{ "range", required_argument, NULL, 'R' },
		{ "map", required_argument, NULL, 'x' },
		{ "timing", no_argument, NULL, 'T' },
		{ "repeat", required_argument, NULL, 'N' },
		{ "shift-tree", required_argument, NULL, 's' },
		{ "print-range", no_argument, NULL, 'Q' },
		{ "pasta", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct strv deny = STRV_INIT;
	int64_t range = -1;
	bool timing = false, print_range = false;
	int64_t repeat = 1;
	const char *shift = NULL;
	struct sandbox_idmap extra[SANDBOX_IDMAP_MAX];
	size_t n_extra = 0;
	struct sandbox sb = SANDBOX_INIT;
	struct sandbox_bind binds[16];
	struct strv bind_specs = STRV_INIT;
	struct buf cap = BUF_INIT;
	bool capture = false, gid_set = false;
	const char *private_mount = NULL;
	int c;

	strv_push(&sb.env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	strv_push(&sb.env, "HOME=/root");
	strv_push(&sb.env, "LC_ALL=C");
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r': sb.root = optarg; break;
		case 'u':
			sb.uid = (uid_t)num(optarg);
			sb.drop_privs = true;
			if (!gid_set)
				sb.gid = (gid_t)sb.uid;
			break;
		case 'g': sb.gid = (gid_t)num(optarg); gid_set = true; break;
		case 't': sb.timeout_ms = (unsigned)num(optarg) * 1000; break;
		case 'n': sb.network = true; break;
		case 'h': sb.hostname = optarg; break;
		case 'F': sb.rlimit_nofile = num(optarg); break;
		case 'P': sb.rlimit_nproc = num(optarg); break;
		case 'S': sb.rlimit_fsize = num(optarg); break;
		case 'A': sb.rlimit_as = num(optarg); break;
		case 'c': sb.cwd = optarg; break;
		case 'C': capture = true; break;
		case 'M': private_mount = optarg; break;
		case 'p': sb.pids_max = num(optarg); break;
		case 'm': sb.memory_max = num(optarg); break;
		case 'w': sb.cpu_weight = (int)num(optarg); break;
		case 'd': strv_push(&deny, optarg); break;
		case 'R': range = num(optarg); break;
		case 'T': timing = true; break;
		case 'N': repeat = num(optarg); break;
		case 's': shift = optarg; break;
		case 'Q': print_range = true; break;
		case 'W': sb.pasta = optarg; break;
		case 'x': {
			char *colon = strchr(optarg, ':');
			if (!colon || n_extra + 1 >= SANDBOX_IDMAP_MAX)
				return 2;
			*colon = '\0';
			extra[n_extra++] = (struct sandbox_idmap){ (uint32_t)num(optarg),
								   (uint32_t)num(colon + 1), 1 };
			break;
		}
		case 'e': {
			char *eq = strchr(optarg, '=');
			if (!eq)
				return 2;
			*eq = '\0';
			strv_setenv(&sb.env, optarg, eq + 1);
			break;
		}
		case 'l':
			sb.log_fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (sb.log_fd < 0) {
				perror(optarg);
				return 2;
			}
			break;
		case 'b': {
			if (sb.n_binds == ARRAY_SIZE(binds))
				return 2;
			strv_push(&bind_specs, optarg);
			char *spec = bind_specs.v[bind_specs.n - 1];
			char *t = strchr(spec, ':');
			if (!t)
				return 2;
			*t++ = '\0';
			char *mode = strchr(t, ':');
			if (mode)
				*mode++ = '\0';
			binds[sb.n_binds++] = (struct sandbox_bind){ spec, t, mode && !strcmp(mode, "rw") };
			break;
		}
		default:
			return 2;
		}
	}
	if (print_range || shift) {
		int rc = 0;
		sandbox_free(&sb);
		if (print_range) {
			struct sandbox_range r;
			sandbox_range_get(NULL, &r);
			printf("%u %u\n", (unsigned)r.uid_base, (unsigned)r.gid_base);
		} else if (range < SANDBOX_RANGE_SIZE || range > UINT32_MAX - SANDBOX_RANGE_SIZE) {
			fprintf(stderr, "sandbox-helper: --shift-tree needs --range BASE\n");
			rc = 2;
		} else {
			shift_base = (uint32_t)range;
			if (nftw(shift, shift_one, 64, FTW_PHYS | FTW_MOUNT) < 0) {
				perror(shift);
				rc = 1;
			}
			rc = rc ? rc : shift_err;
		}
		return rc;
	}
	if (range >= 0) {
		/* pasta's user: the sandbox's default */
		struct sandbox_range r = { .uid_base = (uid_t)range, .gid_base = (gid_t)range };
		sandbox_map_range(&sb, &r);
	}
	if (n_extra) {
		if (range < 0 && sandbox_map_id(&sb, 0, SANDBOX_FALLBACK_BASE, 0,
						SANDBOX_FALLBACK_BASE) < 0)
			return 2;
		for (size_t i = 0; i < n_extra; i++)
			if (sandbox_map_id(&sb, extra[i].inside, extra[i].outside, extra[i].inside,
					   extra[i].outside) < 0)
				return 2;
	}
	if (deny.n)
		sb.seccomp_deny = &deny;
	if (!sb.root || optind >= argc) {
		fprintf(stderr, "usage: sandbox-helper --root DIR [options] -- CMD [ARG...]\n");
		return 2;
	}
	for (int i = optind; i < argc; i++)
		strv_push(&sb.argv, argv[i]);
	sb.binds = binds;
	if (capture)
		sb.capture = &cap;

	struct err e = ERR_INIT;
	if (private_mount) {
		if (sandbox_private_mounts(&e) < 0 || sandbox_private_mounts(&e) < 0) {
			fprintf(stderr, "sandbox-helper: %s\n", err_msg(&e));
			return 125;
		}
		_cleanup_free_ char *marker = path_join(private_mount, "marker");
		if (mount("tmpfs", private_mount, "tmpfs", 0, "size=1m") < 0 ||
		    fs_write_atomic(marker, "private\n", 8, 0644) < 0) {
			perror(private_mount);
			return 125;
		}
	}
	struct sandbox_timing sum = { 0 }, t;
	int r = 0;
	for (int64_t i = 0; i < repeat; i++) {
		r = sandbox_run(&sb, &e);
		sandbox_last_timing(&t);
		sum.total_us += t.total_us;
		sum.prepare_us += t.prepare_us;
		sum.cgroup_us += t.cgroup_us;
		sum.netns_us += t.netns_us;
		sum.pasta_us += t.pasta_us;
		sum.mounts_us += t.mounts_us;
		sum.network_us += t.network_us;
		sum.userns_us += t.userns_us;
		sum.seccomp_us += t.seccomp_us;
		if (r < 0)
			break;
	}
	if (timing && repeat > 0)
		fprintf(stderr, "sandbox-helper: setup %.2f ms (prepare %.2f, fork+netns %.2f, "
			"pasta %.2f, cgroup %.2f; init: mounts %.2f, network %.2f, userns %.2f, "
			"seccomp %.2f) mean of %" PRId64 "\n",
			sum.total_us / 1e3 / repeat, sum.prepare_us / 1e3 / repeat,
			sum.netns_us / 1e3 / repeat, sum.pasta_us / 1e3 / repeat,
			sum.cgroup_us / 1e3 / repeat,
			sum.mounts_us / 1e3 / repeat, sum.network_us / 1e3 / repeat,
			sum.userns_us / 1e3 / repeat, sum.seccomp_us / 1e3 / repeat, repeat);
	if (capture)
		fwrite(cap.p, 1, cap.len, stdout);
	if (r < 0) {
		fprintf(stderr, "sandbox-helper: %s\n", err_msg(&e));
		r = r == -ETIMEDOUT ? 124 : 125;
	}
	err_free(&e);
	buf_free(&cap);
	strv_free(&bind_specs);
	strv_free(&deny);
	sandbox_free(&sb);
	return r;
}
