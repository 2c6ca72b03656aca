/*
 * cli/cmd-image.c - upaas image: create, list, show, remove base OS images,
 * and run a command in a throwaway copy of one.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <json-c/json.h>

#include "rootfs/rootfs.h"
#include "sandbox/sandbox.h"
#include "cli/cli.h"
#include "images/images.h"

static void image_help(FILE *out)
{
	fputs("usage: upaas image COMMAND [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  create [--force] [NAME]     bootstrap, pack and store the base image NAME\n"
	      "                              (default <distribution>-<variant>-<arch>); an image\n"
	      "                              that is up to date is reused unless --force\n"
	      "  list [--json]               list the stored images\n"
	      "  show [--json] NAME          show an image's manifest\n"
	      "  rm NAME                     remove an image (manifest first, then the blob)\n"
	      "  run [--network] [--user] [--timeout S] NAME -- CMD [ARGS...]\n"
	      "                              run CMD in a throwaway copy of the image (the\n"
	      "                              default image is created first when missing);\n"
	      "                              the image never changes.\n"
	      "                              Exits with CMD's status (128+N when killed by\n"
	      "                              signal N, 124 on timeout, 1 when upaas fails)\n"
	      "\n"
	      "Options:\n"
	      "  -f, --force       create: rebuild even when the stored image is up to date\n"
	      "  --json            list, show: machine-readable output\n"
	      "  -n, --network     run: share the host's network (default: only loopback)\n"
	      "  -u, --user        run: as apps.uid/apps.gid with every capability dropped\n"
	      "                    (default: root inside the sandbox)\n"
	      "  -t, --timeout S   run: kill the command and its children after S seconds\n"
	      "  -h, --help        this help\n",
	      out);
}

struct image_opts {
	bool force;
	bool json;
	bool network;
	bool user;
	int64_t timeout;
};

/* Parses the options of a sub-command; returns -1 to go on, else the exit
 * status. */
static int parse_opts(int argc, char **argv, const char *shortopts,
		      const struct option *longopts, struct image_opts *o)
{
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (ch) {
		case 'h': image_help(stdout); return 0;
		case 'f': o->force = true; break;
		case 'j': o->json = true; break;
		case 'n': o->network = true; break;
		case 'u': o->user = true; break;
		case 't':
			if (parse_int64(optarg, 1, 7 * 86400, &o->timeout) < 0)
				return cli_usage("invalid --timeout '%s' (seconds, 1..604800)", optarg);
			break;
		default:
			image_help(stderr);
			return 2;
		}
	}
	return -1;
}

static void print_info(const struct image_info *i)
{
	char created[32], size[32];

	time_iso8601(i->created, created);
	fmt_bytes(i->size, size);
	printf("name:     %s\n", i->name);
	printf("sha256:   %s\n", i->sha256);
	printf("size:     %s (%llu bytes)\n", size, (unsigned long long)i->size);
	printf("created:  %s\n", created);
}

/* ----------------------------------------------------------------- create */

static int image_cmd_create(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_opts o = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *def = NULL;
	_cleanup_buf_ struct buf reason = BUF_INIT;
	struct image_info i = { 0 };
	struct storage *s;
	const char *name;
	int64_t start;
	int r;

	r = parse_opts(argc, argv, "+fh", longopts, &o);
	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return cli_usage("usage: upaas image create [--force] [NAME]");
	if (cli_storage(c, &s) < 0)
		return 1;
	name = optind < argc ? argv[optind] : (def = image_default_name(&c->cfg));

	if (!o.force && image_load(s, name, &i, &e) == 0) {
		if (!image_needs_rebuild(&c->cfg, &i, &reason)) {
			char created[32];

			time_iso8601(i.created, created);
			printf("image '%s' is up to date (created %s)\n", name, created);
			print_info(&i);
			image_info_free(&i);
			return 0;
		}
		log_info("rebuilding image '%s': %s", name, reason.p);
	}
	image_info_free(&i);
	err_clear(&e);
	start = now_unix();
	r = image_ensure(&c->cfg, s, name, o.force, &i, &e);
	if (r < 0)
		return cli_fail(&e, "cannot create the image");
	if (i.created < start) {
		char created[32];

		time_iso8601(i.created, created);
		printf("image '%s' is up to date (created %s)\n", name, created);
	} else {
		printf("image '%s' created\n", name);
	}
	print_info(&i);
	image_info_free(&i);
	return 0;
}

/* ------------------------------------------------------------- list, show */

static int image_cmd_list(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_opts o = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv names = STRV_INIT;
	struct json_object *arr = NULL;
	struct storage *s;
	int r, rc = 0;

	r = parse_opts(argc, argv, "+h", longopts, &o);
	if (r >= 0)
		return r;
	if (optind < argc)
		return cli_usage("usage: upaas image list [--json]");
	if (cli_storage(c, &s) < 0)
		return 1;
	if (image_list(s, &names, &e) < 0)
		return cli_fail(&e, "cannot list images");
	if (o.json)
		arr = json_object_new_array();
	else if (names.n)
		printf("%-32s %-20s %10s  %s\n", "NAME", "CREATED", "SIZE", "SHA256");
	for (size_t n = 0; n < names.n; n++) {
		struct image_info i = { 0 };
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (image_load(s, names.v[n], &i, &e2) < 0) {
			log_warn("%s", err_msg(&e2));
			rc = 1;
			continue;
		}
		if (arr) {
			struct json_object *m = json_tokener_parse(i.manifest_json);

			if (m)
				json_object_array_add(arr, m);
		} else {
			char created[32], size[32];

			time_iso8601(i.created, created);
			fmt_bytes(i.size, size);
			printf("%-32s %-20s %10s  %.12s\n", i.name, created, size, i.sha256);
		}
		image_info_free(&i);
	}
	if (arr) {
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	return rc;
}

static int image_cmd_show(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_opts o = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf reason = BUF_INIT;
	struct image_info i = { 0 };
	struct json_object *m, *v;
	struct storage *s;
	int r;

	r = parse_opts(argc, argv, "+h", longopts, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return cli_usage("usage: upaas image show [--json] NAME");
	if (cli_storage(c, &s) < 0)
		return 1;
	if (image_load(s, argv[optind], &i, &e) < 0)
		return cli_fail(&e, "cannot load the image");
	if (o.json) {
		fputs(i.manifest_json, stdout);
		if (!*i.manifest_json || i.manifest_json[strlen(i.manifest_json) - 1] != '\n')
			putchar('\n');
		image_info_free(&i);
		return 0;
	}
	print_info(&i);
	m = json_tokener_parse(i.manifest_json);
	if (m) {
		static const char *const keys[] = { "distribution", "suite", "codename", "arch",
						    "variant", "mirror", "tool", "cache_key" };

		for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
			if (json_object_object_get_ex(m, keys[k], &v) && v)
				printf("%s:%*s%s\n", keys[k], (int)(strlen(keys[k]) < 9 ? 9 - strlen(keys[k]) : 1),
				       "", json_object_get_string(v));
		if (json_object_object_get_ex(m, "components", &v) && v)
			printf("components: %s\n", json_object_to_json_string(v));
		if (json_object_object_get_ex(m, "extra_packages", &v) && v)
			printf("extra:    %s\n", json_object_to_json_string(v));
		if (json_object_object_get_ex(m, "packages", &v) &&
		    json_object_is_type(v, json_type_array))
			printf("packages: %zu installed\n", json_object_array_length(v));
		json_object_put(m);
	}
	printf("fresh:    %s\n", image_needs_rebuild(&c->cfg, &i, &reason) ? "no" : "yes");
	if (reason.len)
		printf("rebuild:  %s\n", reason.p);
	image_info_free(&i);
	return 0;
}

/* --------------------------------------------------------------------- rm */

static int image_cmd_rm(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_opts o = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s;
	int r;

	r = parse_opts(argc, argv, "+h", longopts, &o);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return cli_usage("usage: upaas image rm NAME");
	if (cli_storage(c, &s) < 0)
		return 1;
	if (image_remove(&c->cfg, s, argv[optind], &e) < 0)
		return cli_fail(&e, "cannot remove the image");
	printf("image '%s' removed\n", argv[optind]);
	return 0;
}

/* -------------------------------------------------------------------- run */

/*
 * Removes the workspaces of runs that died (kill -9): each live run holds a
 * lock on <workdir>/run-<id>.lock; a lock we can take belongs to nobody.
 * Their mounts died with their mount namespaces; only files are left.
 */
static void remove_dead_runs(const char *workdir)
{
	_cleanup_strv_ struct strv locks = STRV_INIT;
	DIR *d = opendir(workdir);

	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		size_t n = strlen(de->d_name);

		if (!strncmp(de->d_name, "run-", 4) && n > 9 && !strcmp(de->d_name + n - 5, ".lock"))
			strv_push(&locks, de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < locks.n; i++) {
		_cleanup_free_ char *lock = path_join(workdir, locks.v[i]);
		_cleanup_free_ char *dir = xstrndup(lock, strlen(lock) - 5);
		_cleanup_err_ struct err e = ERR_INIT;
		_cleanup_close_ int fd = lock_file(lock, false, &e);

		if (fd < 0)
			continue;
		if (fs_rm_rf(dir, &e) < 0) {
			log_warn("cannot remove the stale workspace '%s': %s", dir, err_msg(&e));
			continue;
		}
		unlink(lock);
	}
}

static int image_run(struct cli *c, const struct image_opts *o, const char *name,
		     char **cmd, int ncmd, struct err *e)
{
	const struct config *cfg = &c->cfg;
	struct image_info i = { 0 };
	struct workspace w = WORKSPACE_INIT;
	struct sandbox sb = SANDBOX_INIT;
	_cleanup_strv_ struct strv lowers = STRV_INIT;
	_cleanup_free_ char *id = NULL, *dir = NULL, *lock = NULL;
	_cleanup_close_ int lfd = -1;
	_cleanup_err_ struct err e2 = ERR_INIT;
	const char *term = getenv("TERM");
	struct storage *s;
	int r;

	if (cli_storage(c, &s) < 0)
		return -EINVAL;
	/* the default image is made on first use; another name must exist, so
	 * that a typo does not bootstrap a new image */
	_cleanup_free_ char *def = image_default_name(cfg);
	if (strcmp(name, def)) {
		struct image_info probe = { 0 };
		r = image_load(s, name, &probe, e);
		image_info_free(&probe);
		if (r == -ENOENT) {
			err_clear(e);
			return err_set(e, r, "no image '%s' (create it with 'upaas image create %s')",
				       name, name);
		}
		if (r < 0)
			return r;
	}
	r = image_ensure(cfg, s, name, false, &i, e);
	if (r < 0)
		return r;
	r = rootcache_get(cfg, s, i.key, i.sha256, i.size, &lowers, e);
	image_info_free(&i);
	if (r < 0)
		return r;
	r = sandbox_private_mounts(e);
	if (r < 0)
		return r;
	r = fs_mkdir_p(cfg->paths.workdir, 0700);
	if (r < 0)
		return err_set(e, r, "cannot create '%s': %s", cfg->paths.workdir, strerror(-r));
	remove_dead_runs(cfg->paths.workdir);

	id = id_new();
	dir = xasprintf("%s/run-%s", cfg->paths.workdir, id);
	lock = xasprintf("%s.lock", dir);
	lfd = lock_file(lock, true, e);
	if (lfd < 0)
		return lfd;
	r = workspace_create(&w, dir, &lowers, e);
	if (r < 0) {
		unlink(lock);
		return r;
	}

	sb.root = w.root;
	for (int k = 0; k < ncmd; k++)
		strv_push(&sb.argv, cmd[k]);
	strv_push(&sb.env, "PATH=" SANDBOX_DEFAULT_PATH);
	strv_pushf(&sb.env, "HOME=%s", o->user ? cfg->apps.home : "/root");
	strv_push(&sb.env, "LANG=C.UTF-8");
	if (term)
		strv_pushf(&sb.env, "TERM=%s", term);
	sb.network = o->network;
	sb.drop_privs = o->user;
	sb.uid = (uid_t)cfg->apps.uid;
	sb.gid = (gid_t)cfg->apps.gid;
	sb.timeout_ms = (unsigned)o->timeout * 1000u;
	sb.stdin_fd = STDIN_FILENO;
	sandbox_limits_from_config(&sb, cfg);
	r = sandbox_run(&sb, e);
	sandbox_free(&sb);

	if (workspace_destroy(&w, &e2) < 0)
		log_warn("%s", err_msg(&e2));
	else
		unlink(lock);
	return r;
}

static int image_cmd_run(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "network", no_argument, NULL, 'n' },
		{ "user", no_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct image_opts o = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	const char *name;
	int r;

	r = parse_opts(argc, argv, "+nut:h", longopts, &o);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return cli_usage("usage: upaas image run [--network] [--user] [--timeout S] NAME -- CMD...");
	name = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc)
		return cli_usage("image run: no command (upaas image run NAME -- CMD...)");
	if (cli_config(c) < 0)
		return 1;
	fflush(stdout);
	r = image_run(c, &o, name, argv + optind, argc - optind, &e);
	if (r == -ETIMEDOUT) {
		cli_fail(&e, "timed out");
		return 124;
	}
	if (r < 0)
		return cli_fail(&e, "cannot run the command");
	return r;
}

int cmd_image(struct cli *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *c, int argc, char **argv);
	} subs[] = {
		{ "create", image_cmd_create },
		{ "list", image_cmd_list },
		{ "ls", image_cmd_list },
		{ "show", image_cmd_show },
		{ "rm", image_cmd_rm },
		{ "remove", image_cmd_rm },
		{ "run", image_cmd_run },
	};

	if (argc < 2) {
		image_help(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		image_help(stdout);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(c, argc - 1, argv + 1);
	return cli_usage("unknown image command '%s' (see 'upaas image --help')", argv[1]);
}
