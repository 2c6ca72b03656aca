/*
 * tests/unit/test-config.c - the admin config: defaults, loading, every kind
 * of problem with its exact line, config_show, secrets, name validators.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"

static char *tmpdir;

/* Writes text to a new file in tmpdir; caller frees the path. */
static char *write_tmp(const char *name, const char *text)
{
	char *path = path_join(tmpdir, name);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
	return path;
}

static int setup(void **state)
{
	char t[] = "/tmp/upaas-test-config.XXXXXX";
	assert_non_null(mkdtemp(t));
	tmpdir = xstrdup(t);
	unsetenv("UPAAS_CONFIG");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	return 0;
}

static int teardown(void **state)
{
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(tmpdir, &e), 0);
	err_free(&e);
	free(tmpdir);
	return 0;
}

/* --------------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
	struct config c;
	config_defaults(&c);
	assert_null(c.file);
	assert_string_equal(c.paths.workdir, "/var/lib/upaas/work");
	assert_string_equal(c.paths.cache, "/var/cache/upaas");
	assert_string_equal(c.paths.state, "/var/lib/upaas");
	assert_string_equal(c.bootstrap.tool, "auto");
	assert_string_equal(c.bootstrap.distribution, "bookworm");
	assert_null(c.bootstrap.mirror);
	assert_string_equal(c.bootstrap.variant, "minbase");
	assert_null(c.bootstrap.arch);
	assert_int_equal(c.bootstrap.components.n, 1);
	assert_string_equal(c.bootstrap.components.v[0], "main");
	assert_int_equal(c.bootstrap.packages.n, 1);
	assert_string_equal(c.bootstrap.packages.v[0], "ca-certificates");
	assert_false(strv_contains(&c.bootstrap.packages, "git"));
	assert_int_equal(c.bootstrap.max_age_days, 30);
	assert_int_equal(c.bootstrap.timeout, 1800);
	assert_int_equal(c.commands.timeout, 3600);
	assert_int_equal(c.commands.install.n, 5);
	assert_string_equal(c.commands.install.v[0], "apt-get");
	assert_string_equal(c.commands.install.v[4], "{packages}");
	assert_int_equal(c.commands.update.n, 2);
	assert_string_equal(c.storage.handler, "local");
	assert_string_equal(c.storage.path, "/var/lib/upaas/storage");
	assert_string_equal(c.storage.region, "us-east-1");
	assert_string_equal(c.storage.prefix, "");
	assert_int_equal(c.storage.part_size, 16 << 20);
	assert_int_equal(c.storage.multipart_threshold, 16 << 20);
	assert_int_equal(c.storage.parallel, 4);
	assert_int_equal(c.storage.retries, 4);
	assert_int_equal(c.storage.timeout, 60);
	assert_int_equal(c.storage.connect_timeout, 10);
	assert_null(c.storage.secret_key);
	assert_string_equal(c.queue.url, "sqlite:///var/lib/upaas/upaas.db");
	assert_int_equal(c.queue.lease_seconds, 60);
	assert_int_equal(c.apps.uid, 1000);
	assert_int_equal(c.apps.gid, 1000);
	assert_string_equal(c.apps.user, "app");
	assert_string_equal(c.apps.home, "/home/app");
	assert_int_equal(c.apps.keep_packages, 5);
	assert_int_equal(c.limits.nofile, 65536);
	assert_int_equal(c.limits.nproc, 4096);
	assert_int_equal(c.limits.pids, 4096);
	assert_int_equal(c.limits.memory, (int64_t)4 << 30);
	assert_int_equal(c.limits.cpu_weight, 100);
	assert_int_equal(c.limits.address_space, 0);
	assert_int_equal(c.limits.unpacked_cache, (int64_t)8 << 30);
	assert_string_equal(c.sandbox.user, "upaas");
	assert_int_equal(c.sandbox.uid_base, 0);
	assert_int_equal(c.sandbox.gid_base, 0);
	assert_int_equal(c.sandbox.seccomp_deny.n, 0);
	assert_string_equal(c.sandbox.pasta, "/usr/bin/pasta");
	assert_int_equal(c.pack.level, 3);
	assert_int_equal(c.pack.threads, 0);
	assert_string_equal(c.deploy.root, "/srv/upaas");
	assert_string_equal(c.deploy.hooks_dir, "/etc/upaas/hooks");
	assert_int_equal(c.deploy.hook_timeout, 300);
	assert_false(c.deploy.hooks_as_root);
	assert_int_equal(c.deploy.keep, 5);
	assert_string_equal(c.deploy.schedule, "* * * * *");
	/* built-in interpreters from Debian's packages */
	assert_int_equal(c.interpreters.n_types, 2);
	assert_string_equal(c.interpreters.types[0].name, "python");
	assert_true(strv_contains(&c.interpreters.types[0].any.packages, "python3"));
	assert_string_equal(c.interpreters.types[1].name, "nodejs");
	config_free(&c);
}

/* No -c, no $UPAAS_CONFIG, no default file: the defaults, no problem. */
static void test_load_none(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	if (access(UPAAS_DEFAULT_CONFIG, F_OK) == 0)
		skip();
	assert_int_equal(config_load(&c, NULL, &d), 0);
	assert_int_equal(d.n, 0);
	assert_null(c.file);
	assert_string_equal(c.storage.handler, "local");
	config_free(&c);
}

static void test_load_env_missing(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	_cleanup_free_ char *missing = path_join(tmpdir, "missing.cfg");
	setenv("UPAAS_CONFIG", missing, 1);
	assert_int_equal(config_load(&c, NULL, &d), -EINVAL);
	unsetenv("UPAAS_CONFIG");
	assert_int_equal(d.n, 1);
	assert_string_equal(d.v[0].file, missing);
	assert_non_null(strstr(d.v[0].msg, "No such file"));
	config_free(&c);
	diags_free(&d);
}

static void test_load_values(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	_cleanup_free_ char *path = write_tmp("good.cfg",
		"paths = { state = \"/srv/state\"; };\n"
		"bootstrap = { tool = \"debootstrap\"; mirror = \"http://deb.debian.org/debian\";\n"
		"  packages = [ \"ca-certificates\", \"locales\" ]; };\n"
		"commands = { install = [ \"apt\", \"install\", \"{packages}\" ]; update = []; };\n"
		"storage = { handler = \"s3\"; bucket = \"my-bucket\"; part_size = \"32M\";\n"
		"  multipart_threshold = 100000000; secret_key = \"s3cr3t\"; };\n"
		"limits = { unpacked_cache = \"20G\"; memory = 4294967296L; };\n"
		"pack = { level = 19; };\n"
		"interpreters = {\n"
		"  env = { LANG = \"C.UTF-8\"; };\n"
		"  actions = { system = \"echo sys\"; finalize = [ \"a\", \"b\" ]; main = []; };\n"
		"  python = {\n"
		"    any = { packages = [ \"python3\" ]; actions = { interpreter = \"true\"; }; };\n"
		"    versions = ( { version = \"3.11\"; env = { X = \"1\"; }; },\n"
		"                 { version = \"3.9\"; } );\n"
		"  };\n"
		"};\n");
	assert_int_equal(config_load(&c, path, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(c.file, path);
	assert_string_equal(c.paths.state, "/srv/state");
	/* derived from paths.state when not set */
	assert_string_equal(c.storage.path, "/srv/state/storage");
	assert_string_equal(c.queue.url, "sqlite:///srv/state/upaas.db");
	assert_string_equal(c.bootstrap.tool, "debootstrap");
	assert_string_equal(c.bootstrap.mirror, "http://deb.debian.org/debian");
	assert_int_equal(c.bootstrap.packages.n, 2);
	assert_int_equal(c.commands.install.n, 3);
	assert_int_equal(c.commands.update.n, 0);
	assert_string_equal(c.storage.handler, "s3");
	assert_string_equal(c.storage.bucket, "my-bucket");
	assert_int_equal(c.storage.part_size, 32 << 20);
	assert_int_equal(c.storage.multipart_threshold, 100000000);
	assert_string_equal(c.storage.secret_key, "s3cr3t");
	assert_int_equal(c.limits.unpacked_cache, (int64_t)20 << 30);
	config_free(&c);

	/* a bigger part_size alone raises the default threshold with it */
	_cleanup_free_ char *parts = write_tmp("parts.cfg", "storage = { part_size = \"64M\"; };\n");
	assert_int_equal(config_load(&c, parts, &d), 0);
	assert_int_equal(c.storage.multipart_threshold, 64 << 20);
	config_free(&c);
	assert_int_equal(config_load(&c, path, &d), 0);
	assert_int_equal(c.limits.memory, (int64_t)4 << 30);
	assert_int_equal(c.pack.level, 19);
	/* the interpreters group replaces the built-in one */
	assert_int_equal(c.interpreters.n_types, 1);
	assert_string_equal(kvlist_get(&c.interpreters.env, "LANG"), "C.UTF-8");
	assert_true(c.interpreters.actions.a[STEP_SYSTEM].defined);
	assert_string_equal(c.interpreters.actions.a[STEP_SYSTEM].commands.v[0], "echo sys");
	assert_int_equal(c.interpreters.actions.a[STEP_FINALIZE].commands.n, 2);
	assert_true(c.interpreters.actions.a[STEP_MAIN].defined);
	assert_int_equal(c.interpreters.actions.a[STEP_MAIN].commands.n, 0);
	assert_false(c.interpreters.actions.a[STEP_BEFORE].defined);
	const struct cfg_interp_type *t = &c.interpreters.types[0];
	assert_string_equal(t->name, "python");
	assert_int_equal(t->line, 12);
	assert_string_equal(t->any.version, "any");
	assert_true(t->any.actions.a[STEP_INTERPRETER].defined);
	assert_int_equal(t->n_versions, 2);
	assert_string_equal(t->versions[0].version, "3.11");
	assert_int_equal(t->versions[0].line, 14);
	assert_string_equal(kvlist_get(&t->versions[0].env, "X"), "1");
	assert_string_equal(t->versions[1].version, "3.9");
	assert_int_equal(t->versions[1].line, 15);
	config_free(&c);
}

/* ------------------------------------------------------------ problems */

struct bad_case {
	const char *text;
	int line;            /* of the expected problem */
	const char *msg;     /* a substring of its message */
};

static const struct bad_case bad_cases[] = {
	/* syntax */
	{ "paths = {\n  state = ;\n};\n", 2, "syntax error" },
	{ "a = 1;\na = 2;\n", 2, "duplicate setting" },
	/* unknown keys */
	{ "pathz = { };\n", 1, "unknown setting 'pathz'" },
	{ "paths = {\n  work = \"/x\";\n};\n", 2, "paths.work: unknown setting 'work'" },
	{ "storage = {\n\n  handler = \"local\";\n  buckets = \"x\";\n};\n", 4, "unknown setting 'buckets'" },
	/* wrong types */
	{ "paths = \"/x\";\n", 1, "paths: expected a group, got a string" },
	{ "storage = {\n  parallel = \"4\";\n};\n", 2, "storage.parallel: expected an integer, got a string" },
	{ "storage = {\n  path_style = 1;\n};\n", 2, "expected a boolean" },
	{ "bootstrap = {\n  packages = [ 1, 2 ];\n};\n", 2, "expected a string, got an integer" },
	{ "bootstrap = {\n  timeout = 1.5;\n};\n", 2, "expected an integer, got a float" },
	{ "commands = {\n  install = { a = 1; };\n};\n", 2, "expected a string or a list of strings" },
	/* bad values */
	{ "commands = {\n  timeout = -1;\n};\n", 2, "commands.timeout: must be at least 0, got -1" },
	{ "bootstrap = {\n  timeout = -5;\n};\n", 2, "must be at least 0" },
	{ "deploy = {\n  hook_timeout = -1;\n};\n", 2, "must be at least 0" },
	{ "storage = {\n  part_size = 1048576;\n};\n", 2, "storage.part_size: must be between 5242880" },
	{ "storage = {\n  part_size = \"4M\";\n};\n", 2, "must be between 5242880" },
	{ "storage = {\n  part_size = \"lots\";\n};\n", 2, "is not a size" },
	{ "storage = {\n  handler = \"ftp\";\n};\n", 2, "'ftp' is not a storage handler" },
	{ "storage = {\n  handler = \"s3\";\n};\n", 1, "the s3 handler needs 'bucket'" },
	{ "storage = {\n  handler = \"http\";\n};\n", 1, "the http handler needs 'url'" },
	{ "storage = {\n  bucket = \"A_B\";\n};\n", 2, "is not a bucket name" },
	{ "storage = {\n  part_size = \"32M\";\n  multipart_threshold = \"16M\";\n};\n", 1,
	  "multipart_threshold (16777216) must be at least part_size (33554432)" },
	{ "storage = {\n  prefix = \"../x\";\n};\n", 2, "is not a relative key prefix" },
	{ "storage = {\n  secret_key_file = \"key\";\n};\n", 2, "'key' is not an absolute path" },
	{ "storage = {\n  endpoint = \"s3.example.com\";\n};\n", 2, "is not an http:// or https:// URL" },
	{ "bootstrap = {\n  tool = \"cdebootstrap\";\n};\n", 2, "'cdebootstrap' is not a bootstrap tool" },
	{ "bootstrap = {\n  mirror = \"ftp://x\";\n};\n", 2, "is not an http://" },
	{ "sandbox = {\n  uid_base = 1000;\n};\n", 1, "uid_base must be 0 (from /etc/subuid) or at least 65536" },
	{ "sandbox = {\n  gid_base = 5;\n};\n", 1, "gid_base must be 0 (from /etc/subgid) or at least 65536" },
	{ "sandbox = {\n  uid_base = 4294967295L;\n};\n", 2, "sandbox.uid_base: must be between 0 and" },
	{ "sandbox = {\n  user = \"Up\";\n};\n", 2, "'Up' is not a user name" },
	{ "sandbox = {\n  seccomp_deny = [ \"mount; rm\" ];\n};\n", 2, "is not a system call name" },
	{ "sandbox = {\n  pasta = \"pasta\";\n};\n", 2, "'pasta' is not an absolute path" },
	{ "limits = {\n  cpu_weight = 0;\n};\n", 2, "limits.cpu_weight: must be between 1 and 10000, got 0" },
	{ "limits = {\n  pids = -1;\n};\n", 2, "limits.pids: must be between 0 and" },
	{ "pack = {\n  level = 0;\n};\n", 2, "pack.level: must be between 1 and 19, got 0" },
	{ "pack = {\n  level = 20;\n};\n", 2, "must be between 1 and 19, got 20" },
	{ "queue = {\n  url = \"mysql://x\";\n};\n", 2, "is not a queue URL" },
	{ "queue = {\n  url = \"sqlite://relative.db\";\n};\n", 2, "is not a queue URL" },
	{ "queue = {\n  lease_seconds = 0;\n};\n", 2, "must be at least 1" },
	{ "paths = {\n  workdir = \"var/lib\";\n};\n", 2, "'var/lib' is not an absolute path" },
	{ "paths = {\n  cache = \"/var/../etc\";\n};\n", 2, "is not an absolute path" },
	{ "deploy = {\n  root = \"\";\n};\n", 2, "deploy.root: must not be empty" },
	{ "deploy = {\n  schedule = \"every minute\";\n};\n", 2, "is not a cron schedule" },
	{ "apps = {\n  uid = 0;\n};\n", 2, "apps.uid: must be between 1" },
	{ "apps = {\n  user = \"Root;x\";\n};\n", 2, "is not a user name" },
	{ "bootstrap = {\n  packages = [ \"git\",\n    \"\" ];\n};\n", 3, "bootstrap.packages[1]: must not be empty" },
	{ "bootstrap = {\n  packages = [ \"git;rm -rf /\" ];\n};\n", 2, "'git;rm -rf /' is not a valid Debian package name" },
	{ "bootstrap = {\n  packages = [ \"$(id)\" ];\n};\n", 2, "is not a valid Debian package name" },
	{ "commands = {\n  install = [ \"apt-get\", \"install\" ];\n};\n", 2, "needs an element \"{packages}\"" },
	{ "commands = {\n  install = [ \"{packages}\" ];\n};\n", 2, "must start with the program" },
	{ "commands = {\n  install = [ \"apt-get\", \"\", \"{packages}\" ];\n};\n", 2, "must not be empty" },
	/* interpreters */
	{ "interpreters = {\n  python = {\n    any = {\n      actions = { system = \"x\"; };\n"
	  "    };\n  };\n};\n", 4, "action 'system' may not be defined here" },
	{ "interpreters = {\n  python = {\n    versions = ( { version = \"3\";\n"
	  "      actions = { finalize = \"x\"; }; } );\n  };\n};\n", 4, "action 'finalize' may not be defined here" },
	{ "interpreters = {\n  actions = {\n    interpreter = \"x\";\n  };\n};\n", 3,
	  "action 'interpreter' may not be defined here" },
	{ "interpreters = {\n  actions = {\n    build = \"x\";\n  };\n};\n", 3, "unknown action 'build'" },
	{ "interpreters = {\n  actions = {\n    main = \"\";\n  };\n};\n", 3, "must not be empty" },
	{ "interpreters = {\n  actions = {\n    main = 1;\n  };\n};\n", 3, "expected a string or a list of strings" },
	{ "interpreters = {\n  python = {\n    version = \"3\";\n  };\n};\n", 3, "unknown setting 'version'" },
	{ "interpreters = {\n  python = {\n    versions = (\n      { packages = []; } );\n  };\n};\n", 4,
	  "missing 'version'" },
	{ "interpreters = {\n  python = {\n    versions = ( { version = \"3\"; },\n"
	  "      { version = \"3\"; } );\n  };\n};\n", 4, "version '3' is defined twice" },
	{ "interpreters = {\n  python = {\n    versions = [ \"3.11\" ];\n  };\n};\n", 3, "expected a list of groups" },
	{ "interpreters = {\n  Python = { };\n};\n", 2, "is not a valid interpreter type name" },
	{ "interpreters = {\n  python = 1;\n};\n", 2, "expected a group (an interpreter type)" },
	{ "interpreters = {\n  env = {\n    A-B = \"x\";\n  };\n};\n", 3, "not a valid environment variable name" },
	{ "interpreters = {\n  env = {\n    N = 5;\n  };\n};\n", 3, "expected a string (quote the value)" },
	{ "interpreters = {\n  python = {\n    any = {\n      packages = [ \"python3\", \"Py&\" ];\n"
	  "    };\n  };\n};\n", 4, "'Py&' is not a valid Debian package name" },
};

static void test_bad_cases(void **state)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct config c;
		struct diags d = DIAGS_INIT;
		_cleanup_buf_ struct buf all = BUF_INIT;
		_cleanup_free_ char *want = NULL;
		_cleanup_free_ char *path = write_tmp("bad.cfg", bc->text);

		int r = config_load(&c, path, &d);
		diags_format(&d, &all);
		want = xasprintf("%s:%d: ", path, bc->line);
		bool found = false;
		for (size_t j = 0; j < d.n; j++)
			found |= d.v[j].line == bc->line && strstr(d.v[j].msg, bc->msg);
		if (r != -EINVAL || !found || strncmp(all.p, want, strlen(want)))
			fail_msg("case %zu: want line %d '%s', got r=%d:\n%s", i, bc->line,
				 bc->msg, r, all.p);
		config_free(&c);
		diags_free(&d);
	}
}

/* Every problem of a file is reported, not just the first. */
static void test_all_problems(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	_cleanup_free_ char *path = write_tmp("many.cfg",
		"pathz = {};\n"                                   /* 1 */
		"storage = {\n"                                   /* 2 */
		"  handler = \"ftp\";\n"                          /* 3 */
		"  part_size = 10;\n"                             /* 4 */
		"};\n"
		"pack = { level = 42; threads = -1; };\n"         /* 6 */
		"bootstrap = { packages = [ \"a b\", \"ok\" ]; };\n"/* 7 */
		"interpreters = { nodejs = { any = { actions = { finalize = \"x\"; }; }; }; };\n"); /* 8 */
	static const int lines[] = { 1, 3, 4, 6, 6, 7, 8 };

	assert_int_equal(config_load(&c, path, &d), -EINVAL);
	if (d.n != ARRAY_SIZE(lines)) {
		_cleanup_buf_ struct buf all = BUF_INIT;
		diags_format(&d, &all);
		fail_msg("want %zu problems, got %zu:\n%s", ARRAY_SIZE(lines), d.n, all.p);
	}
	for (size_t i = 0; i < d.n; i++)
		assert_int_equal(d.v[i].line, lines[i]);
	/* the config stays usable: defaults where the value was bad */
	assert_string_equal(c.storage.handler, "local");
	assert_int_equal(c.pack.level, 3);
	config_free(&c);
	diags_free(&d);
}

/* Problems in an @include'd file name that file. */
static void test_include(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	_cleanup_free_ char *inc = write_tmp("inc.cfg", "\n\nfoo = 1;\n");
	_cleanup_free_ char *path = write_tmp("main.cfg",
		"pack = { level = 5; };\n@include \"inc.cfg\"\n");

	assert_int_equal(config_load(&c, path, &d), -EINVAL);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 3);
	assert_non_null(strstr(d.v[0].file, "inc.cfg"));
	assert_int_equal(c.pack.level, 5);
	config_free(&c);
	diags_free(&d);
}

/* ------------------------------------------------------------------- show */

static void test_show(void **state)
{
	struct config c, c2;
	struct diags d = DIAGS_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT, out2 = BUF_INIT;
	_cleanup_free_ char *path = write_tmp("show.cfg",
		"storage = { handler = \"s3\"; bucket = \"bkt\"; access_key = \"AKIDSHOWN\";\n"
		"  secret_key = \"TOPSECRET\"; session_token = \"TOKENSECRET\"; };\n"
		"limits = { unpacked_cache = \"10G\"; };\n"
		"interpreters = { env = { A = \"quote\\\"d\\nline\"; };\n"
		"  python = { any = { packages = [\"python3\"]; };\n"
		"    versions = ( { version = \"3.11\"; actions = { main = [\"pip install .\"]; }; } ); }; };\n");

	assert_int_equal(config_load(&c, path, &d), 0);
	config_show(&c, &out);
	assert_null(strstr(out.p, "TOPSECRET"));
	assert_null(strstr(out.p, "TOKENSECRET"));
	assert_non_null(strstr(out.p, "secret_key = \"********\";"));
	assert_non_null(strstr(out.p, "session_token = \"********\";"));
	assert_non_null(strstr(out.p, "access_key = \"AKIDSHOWN\";"));
	assert_non_null(strstr(out.p, "unpacked_cache = 10737418240L;"));

	/* the output is valid libconfig that loads to the same config */
	_cleanup_free_ char *again = write_tmp("again.cfg", out.p);
	assert_int_equal(config_load(&c2, again, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(kvlist_get(&c2.interpreters.env, "A"), "quote\"d\nline");
	assert_int_equal(c2.limits.unpacked_cache, (int64_t)10 << 30);
	assert_int_equal(c2.interpreters.types[0].n_versions, 1);
	config_show(&c2, &out2);
	/* the same but for the first line (file name) */
	assert_string_equal(strchr(out.p, '\n'), strchr(out2.p, '\n'));
	config_free(&c);
	config_free(&c2);
	diags_free(&d);
}

/* ---------------------------------------------------------------- secrets */

static void test_secrets(void **state)
{
	struct config c;
	struct err e = ERR_INIT;
	_cleanup_free_ char *key = write_tmp("key", "  filesecret \n\n");

	config_defaults(&c);
	c.storage.secret_key_file = xstrdup(key);
	setenv("AWS_ACCESS_KEY_ID", "envakid", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	assert_int_equal(config_storage_secrets(&c.storage, &e), 0);
	assert_string_equal(c.storage.secret_key, "filesecret");   /* file before env */
	assert_string_equal(c.storage.access_key, "envakid");
	assert_string_equal(c.storage.session_token, "envtoken");
	config_free(&c);

	/* inline wins over everything */
	config_defaults(&c);
	c.storage.secret_key = xstrdup("inline");
	c.storage.access_key = xstrdup("inlineid");
	assert_int_equal(config_storage_secrets(&c.storage, &e), 0);
	assert_string_equal(c.storage.secret_key, "inline");
	assert_string_equal(c.storage.access_key, "inlineid");
	config_free(&c);

	/* env only */
	config_defaults(&c);
	assert_int_equal(config_storage_secrets(&c.storage, &e), 0);
	assert_string_equal(c.storage.secret_key, "envsecret");
	config_free(&c);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");

	/* a missing file is an error naming it */
	config_defaults(&c);
	c.storage.secret_key_file = path_join(tmpdir, "nokey");
	assert_int_equal(config_storage_secrets(&c.storage, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), "nokey"));
	config_free(&c);
	err_free(&e);

	/* an empty one too */
	_cleanup_free_ char *empty = write_tmp("empty", " \n");
	config_defaults(&c);
	c.storage.secret_key_file = xstrdup(empty);
	e = (struct err)ERR_INIT;
	assert_int_equal(config_storage_secrets(&c.storage, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "empty"));
	config_free(&c);
	err_free(&e);
}

/* URLs lose their userinfo and secret query values in config show and in
 * messages; the signing group. */
static void test_show_urls(void **state)
{
	struct config c;
	struct diags d = DIAGS_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT, msgs = BUF_INIT;
	_cleanup_free_ char *path = write_tmp("urls.cfg",
		"bootstrap = { mirror = \"http://mu:MIRRORPW@deb.example/debian\"; };\n"
		"storage = { handler = \"http\"; url = \"https://hu:HTTPPW@store.example/p\";\n"
		"  endpoint = \"http://EPTOKEN@127.0.0.1:7480\"; redirect_hosts = [ \"cdn.example\" ]; };\n"
		"queue = { url = \"postgresql://pg:PGPW@db/upaas?password=QPW\"; };\n"
		"signing = { key = \"/etc/upaas/signing.key\";\n"
		"  trusted = [ \"/etc/upaas/a.pub\", \"/etc/upaas/b.pub\" ]; allow_unsigned = true; };\n");

	assert_int_equal(config_load(&c, path, &d), 0);
	assert_string_equal(c.signing.key, "/etc/upaas/signing.key");
	assert_int_equal(c.signing.trusted.n, 2);
	assert_true(c.signing.allow_unsigned);
	assert_string_equal(c.storage.redirect_hosts.v[0], "cdn.example");
	/* the config itself keeps them: the handlers need them */
	assert_non_null(strstr(c.storage.url, "HTTPPW"));
	config_show(&c, &out);
	static const char *const secrets[] = { "MIRRORPW", "HTTPPW", "EPTOKEN", "PGPW", "QPW",
					       "mu:", "hu:", "pg:" };
	for (size_t i = 0; i < ARRAY_SIZE(secrets); i++)
		if (strstr(out.p, secrets[i]))
			fail_msg("config show shows '%s'", secrets[i]);
	assert_non_null(strstr(out.p, "url = \"https://********@store.example/p\";"));
	assert_non_null(strstr(out.p, "postgresql://********@db/upaas?password=********"));
	assert_non_null(strstr(out.p, "key = \"/etc/upaas/signing.key\";"));
	config_free(&c);

	/* a mistyped URL is reported without its secret */
	_cleanup_free_ char *bad = write_tmp("badurl.cfg",
		"queue = { url = \"mysql://u:BADPW@h/db\"; };\n"
		"storage = { secret_key = \"\"; url = \"ftp://u:BADPW2@h/\"; };\n"
		"signing = { key = \"/k\"; trusted = [ \"/k\", \"rel.pub\" ]; };\n");
	assert_int_equal(config_load(&c, bad, &d), -EINVAL);
	diags_format(&d, &msgs);
	assert_null(strstr(msgs.p, "BADPW"));
	assert_non_null(strstr(msgs.p, "queue.url: 'mysql://********@h/db' is not"));
	assert_non_null(strstr(msgs.p, "signing.trusted[1]: 'rel.pub' is not an absolute path"));
	config_free(&c);
	diags_free(&d);

	_cleanup_free_ char *same = write_tmp("same.cfg",
		"signing = { key = \"/k\"; trusted = [ \"/k\" ]; };\n");
	assert_int_equal(config_load(&c, same, &d), -EINVAL);
	buf_reset(&msgs);
	diags_format(&d, &msgs);
	assert_non_null(strstr(msgs.p, "'/k' is the private key"));
	config_free(&c);
	diags_free(&d);
}

/* ------------------------------------------------------------------ names */

static void test_names(void **state)
{
	static const struct { const char *s; bool ok; } pkgs[] = {
		{ "python3", true }, { "libpq-dev", true }, { "g++", true },
		{ "python3.11-venv", true }, { "0ad", true },
		{ "", false }, { "a", false }, { "-rf", false }, { "Python", false },
		{ "a b", false }, { "a;b", false }, { "$(id)", false }, { "a|b", false },
		{ "a&b", false }, { "a`b`", false }, { "a>b", false }, { "a_b", false },
		{ ".hidden", false }, { "+x", false }, { "pkg=1.0", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(pkgs); i++)
		if (package_name_ok(pkgs[i].s) != pkgs[i].ok)
			fail_msg("package_name_ok(\"%s\") != %d", pkgs[i].s, pkgs[i].ok);

	static const struct { const char *s; bool ok; } apps[] = {
		{ "blog", true }, { "my-app_2.0", true }, { "0", true },
		{ "", false }, { "-x", false }, { ".", false }, { "..", false },
		{ "A", false }, { "a/b", false }, { "a b", false },
		{ "a234567890123456789012345678901234567890123456789012345678901234", false },
		{ "a23456789012345678901234567890123456789012345678901234567890123", true },
	};
	for (size_t i = 0; i < ARRAY_SIZE(apps); i++)
		if (app_name_ok(apps[i].s) != apps[i].ok)
			fail_msg("app_name_ok(\"%s\") != %d", apps[i].s, apps[i].ok);

	assert_string_equal(step_name(STEP_SYSTEM), "system");
	assert_string_equal(step_name(STEP_PACKAGES), "os packages");
	assert_string_equal(step_name(STEP_INTERPRETER), "interpreter");
	assert_string_equal(step_name(STEP_CHECKOUT), "checkout");
	assert_string_equal(step_name(STEP_FILES), "files");
	assert_string_equal(step_name(STEP_BEFORE), "before");
	assert_string_equal(step_name(STEP_MAIN), "main");
	assert_string_equal(step_name(STEP_AFTER), "after");
	assert_string_equal(step_name(STEP_FINALIZE), "finalize");
}

static void test_diags_format(void **state)
{
	struct diags d = DIAGS_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT;
	diags_add(&d, "a.cfg", 3, "bad %s", "thing");
	diags_add(&d, "b.cfg", 0, "cannot read");
	diags_format(&d, &out);
	assert_string_equal(out.p, "a.cfg:3: bad thing\nb.cfg: cannot read\n");
	diags_free(&d);
	assert_int_equal(d.n, 0);
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_load_none),
		cmocka_unit_test(test_load_env_missing),
		cmocka_unit_test(test_load_values),
		cmocka_unit_test(test_bad_cases),
		cmocka_unit_test(test_all_problems),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_show_urls),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_diags_format),
	};
	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
