/*
 * tests/unit/sandbox-helper.c - sandbox_run() from the command line, for
 * tests/integration/sandbox.sh:
 *
 *   sandbox-helper --root DIR [--uid N [--gid N]] [--timeout SEC] [--network]
 *       [--hostname NAME] [--nofile N] [--nproc N] [--fsize N] [--as N]
 *       [--bind HOST:TARGET[:rw]]... [--cwd DIR] [--env K=V]... [--log FILE]
 *       [--capture] [--private-mount DIR] -- CMD [ARG...]
 *
 * --private-mount DIR: sandbox_private_mounts() (twice: it is idempotent),
 * then a tmpfs on DIR with a file "marker" in it, as a workspace would be
 * mounted before the sandbox runs.
 *
 * Exits with the command's status; on a sandbox error prints
 * "sandbox-helper: MESSAGE" and exits 125 (124 on timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/mount.h>

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
		{ NULL, 0, NULL, 0 },
	};
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
	int r = sandbox_run(&sb, &e);
	if (capture)
		fwrite(cap.p, 1, cap.len, stdout);
	if (r < 0) {
		fprintf(stderr, "sandbox-helper: %s\n", err_msg(&e));
		r = r == -ETIMEDOUT ? 124 : 125;
	}
	err_free(&e);
	buf_free(&cap);
	strv_free(&bind_specs);
	sandbox_free(&sb);
	return r;
}
