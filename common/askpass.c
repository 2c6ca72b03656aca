/*
 * common/askpass.c - credentials for a child (git) without argv, environment
 * or a file on disk: a sealed memfd that only that child inherits, read back
 * by upaas itself acting as the child's GIT_ASKPASS program.
 *
 * The secret never appears in /proc/<pid>/cmdline or environ: the child's
 * environment carries only the fd number (UPAAS_ASKPASS_FD) and the path of
 * the upaas binary (GIT_ASKPASS). The memfd is close-on-exec for every
 * other child; askpass_child_setup() clears the flag in the one child it is
 * meant for.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"

#define ASKPASS_ENV "UPAAS_ASKPASS_FD"
#define ASKPASS_MAX 8192

int askpass_open(struct askpass *a, const char *user, const char *pass, struct err *e)
{
	*a = (struct askpass){ .fd = -1 };
	if ((user && strchr(user, '\n')) || (pass && strchr(pass, '\n')))
		return err_set(e, -EINVAL, "credentials may not contain a newline");
	int fd = memfd_create("upaas-askpass", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot create a memfd for credentials");
	/* "user\npass\n": what git asks for, in that order */
	struct buf b = BUF_INIT;
	buf_adds(&b, user ? user : "");
	buf_addch(&b, '\n');
	buf_adds(&b, pass ? pass : "");
	buf_addch(&b, '\n');
	int r = fs_write_all(fd, b.p, b.len);
	explicit_bzero(b.p, b.len);
	buf_free(&b);
	if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
			    F_SEAL_SEAL) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return err_set_errno(e, r, "cannot write the credentials memfd");
	}
	ssize_t n = readlink("/proc/self/exe", a->exe, sizeof(a->exe) - 1);
	if (n <= 0 || (size_t)n >= sizeof(a->exe) - 1) {
		close(fd);
		return err_set(e, -ENAMETOOLONG, "cannot find the upaas binary for GIT_ASKPASS");
	}
	a->exe[n] = '\0';
	a->fd = fd;
	return 0;
}

void askpass_env(const struct askpass *a, struct strv *env)
{
	char num[16];
	snprintf(num, sizeof(num), "%d", a->fd);
	strv_setenv(env, "GIT_ASKPASS", a->exe);
	strv_setenv(env, ASKPASS_ENV, num);
	/* never a prompt on a terminal, never an ssh askpass of the desktop */
	strv_setenv(env, "GIT_TERMINAL_PROMPT", "0");
	strv_setenv(env, "SSH_ASKPASS", a->exe);
}

int askpass_child_setup(void *data)
{
	const struct askpass *a = data;
	/* in the child only: the one process that may inherit the secret */
	if (fcntl(a->fd, F_SETFD, 0) < 0)
		return -errno;
	return 0;
}

void askpass_close(struct askpass *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

int askpass_main(int argc, char **argv)
{
	const char *v = getenv(ASKPASS_ENV);
	int64_t fd;

	if (!v || argc != 2 || parse_int64(v, 3, INT_MAX, &fd) < 0)
		return -1;   /* not called as an askpass: upaas as usual */
	char buf[ASKPASS_MAX + 1];
	ssize_t n = pread((int)fd, buf, ASKPASS_MAX, 0);
	close((int)fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (!nl)
		return 1;
	*nl = '\0';
	const char *user = buf, *pass = nl + 1;
	pass = xstrndup(pass, strcspn(pass, "\n"));
	/* git asks "Username for 'https://host': " and "Password for ...";
	 * anything else (an ssh host key question) gets no answer */
	const char *answer = !strncmp(argv[1], "Username", 8) ? user :
			     !strncmp(argv[1], "Password", 8) ? pass : NULL;
	int rc = 1;
	if (answer && *answer) {
		fputs(answer, stdout);
		fputc('\n', stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
	}
	explicit_bzero(buf, sizeof(buf));
	secret_free((char *)pass);
	return rc;
}
