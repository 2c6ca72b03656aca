/*
 * sandbox/net.c - user-mode networking for sandbox runs with network.
 *
 * A run with network gets a network namespace of its own, connected to the
 * outside by pasta (Debian's passt package): pasta reads the namespace's
 * packets from a tap device and replays them as ordinary sockets of the
 * host, so the run reaches what the host reaches, with the host's
 * addresses, but is never on the host's network itself.
 *
 * Who owns what:
 *  - the network namespace is owned by a user namespace made for it, whose
 *    root is pasta's user (sandbox.user, else nobody). pasta needs
 *    CAP_NET_ADMIN over the namespace and gets it there, without ever being
 *    root on the host; root in the sandbox lives in another user namespace
 *    and has no capability over this one: it cannot change the routes, the
 *    addresses or the firewall;
 *  - pasta runs in the run's PID namespace and cgroup (forked by the
 *    sandbox's intermediate after init), so it dies with the run whatever
 *    happens to upaas.
 *
 * What the run cannot reach, and why:
 *  - the host's loopback: pasta runs with --no-map-gw (by default it maps
 *    the gateway address to the host's 127.0.0.1) and -T none -U none (by
 *    default it forwards every port bound on the host's loopback into the
 *    namespace), or -T with the ports an admin named for deployed apps
 *    (their database); the namespace's own 127.0.0.1 is its own lo;
 *  - the host's own addresses: upaas adds an unreachable route for each, in
 *    the namespace, as host root, before the command runs (pasta would
 *    otherwise connect to them from the host side);
 *  - link-local 169.254.0.0/16 (cloud metadata): an unreachable route.
 * No port of the namespace is published on the host (-t none -u none),
 * but for a service (upaas exec: -t auto -u auto, the ports it listens on).
 *
 * Readiness: pasta stays in the foreground (a daemon would be reparented to
 * the command), so init waits for the default routes pasta adds, on an
 * rtnetlink socket, before the command starts.
 */
#define UPAAS_SANDBOX_INTERNAL
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>

#include "sandbox/sandbox-int.h"

/* The fds pasta gets the namespaces as. */
#define PASTA_USERNS_FD 3
#define PASTA_NETNS_FD 4

/* ----------------------------------------------------------- parent side */

/* Appends one RTM_NEWROUTE "unreachable addr/plen" message. */
static void route_add(struct sb_net *n, int family, const void *addr, size_t alen, int plen)
{
	size_t len = NLMSG_SPACE(sizeof(struct rtmsg)) + RTA_SPACE(alen);
	n->routes = xrealloc(n->routes, n->routes_len + len);
	unsigned char *p = n->routes + n->routes_len;
	memset(p, 0, len);
	struct nlmsghdr *h = (struct nlmsghdr *)p;
	h->nlmsg_len = (uint32_t)len;
	h->nlmsg_type = RTM_NEWROUTE;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
	h->nlmsg_seq = (uint32_t)(n->n_routes + 1);
	struct rtmsg *rt = NLMSG_DATA(h);
	rt->rtm_family = (unsigned char)family;
	rt->rtm_dst_len = (unsigned char)plen;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_STATIC;
	rt->rtm_scope = RT_SCOPE_UNIVERSE;
	rt->rtm_type = RTN_UNREACHABLE;
	struct rtattr *a = (struct rtattr *)(p + NLMSG_SPACE(sizeof(struct rtmsg)));
	a->rta_type = RTA_DST;
	a->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(a), addr, alen);
	n->routes_len += len;
	n->n_routes++;
}

/* The host's own addresses, and link-local, as unreachable routes. */
static int routes_prepare(struct sb_net *n, struct err *e)
{
	struct in_addr ll;
	inet_pton(AF_INET, "169.254.0.0", &ll);
	route_add(n, AF_INET, &ll, sizeof(ll), 16);

	struct ifaddrs *ifa;
	if (getifaddrs(&ifa) < 0)
		return err_set_errno(e, -errno, "sandbox: cannot list the host's addresses");
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
			/* the namespace has a loopback of its own */
			if ((ntohl(a.s_addr) >> 24) != 127)
				route_add(n, AF_INET, &a, sizeof(a), 32);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			struct in6_addr a = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (!IN6_IS_ADDR_LOOPBACK(&a) && !IN6_IS_ADDR_LINKLOCAL(&a))
				route_add(n, AF_INET6, &a, sizeof(a), 128);
		}
	}
	freeifaddrs(ifa);
	return 0;
}

/* Which families have a default route on the host (pasta copies them),
 * and the IPv4 gateway (pasta's too: the namespace's gateway). */
static void default_routes(bool *v4, bool *v6, struct in_addr *gw4)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	*v4 = *v6 = false;
	if (buf_read_file(&b, "/proc/net/route", 1 << 20) == 0)
		for (char *line = b.p; *line; ) {
			char *nl = strchrnul(line, '\n');
			char ifname[32], dst[16], gw[16], mask[16];
			unsigned flags;
			if (!*v4 && sscanf(line, "%31s %15s %15s %x %*s %*s %*s %15s", ifname, dst, gw,
					   &flags, mask) == 5 && !strcmp(dst, "00000000") &&
			    !strcmp(mask, "00000000") && (flags & 1)) {
				*v4 = true;
				/* the kernel prints the address in host byte order's hex
				 * of a network-order value */
				gw4->s_addr = (in_addr_t)strtoul(gw, NULL, 16);
			}
			line = *nl ? nl + 1 : nl;
		}
	buf_reset(&b);
	if (buf_read_file(&b, "/proc/net/ipv6_route", 1 << 20) == 0)
		for (char *line = b.p; *line; ) {
			char *nl = strchrnul(line, '\n');
			char dst[40], plen[4], dev[32];
			unsigned flags;
			if (sscanf(line, "%39s %3s %*s %*s %*s %*s %*s %*s %x %31s", dst, plen, &flags,
				   dev) == 4 && !strcmp(plen, "00") && strspn(dst, "0") == 32 &&
			    strcmp(dev, "lo") && (flags & 1))
				*v6 = true;
			line = *nl ? nl + 1 : nl;
		}
}

static bool loopback_ns(const char *a)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, a, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, a, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * A host whose resolver listens on its loopback (systemd-resolved's
 * 127.0.0.53, a local dnsmasq) cannot be asked from the namespace: pasta
 * forwards DNS queries sent to the gateway's address to the host's first
 * nameserver instead (UDP port 53 only), and the run gets a resolv.conf
 * naming the gateway, with the host's other lines.
 */
static int dns_prepare(struct sb_net *n, struct in_addr gw4)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = buf_read_file(&b, "/etc/resolv.conf", 1 << 16);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	bool any = false, remote = false;
	_cleanup_buf_ struct buf rest = BUF_INIT;
	for (char *line = b.p; *line; ) {
		char *nl = strchrnul(line, '\n');
		char save = *nl;
		*nl = '\0';
		char addr[64];
		if (sscanf(line, " nameserver %63s", addr) == 1) {
			any = true;
			remote |= !loopback_ns(addr);
		} else {
			buf_addf(&rest, "%s\n", line);
		}
		*nl = save;
		line = *nl ? nl + 1 : nl;
	}
	if (!any || remote || !gw4.s_addr)
		return 0;
	char gw[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &gw4, gw, sizeof(gw));
	strv_push(&n->argv, "--dns-forward");
	strv_push(&n->argv, gw);
	n->resolv_text = xasprintf("# written by upaas: pasta forwards to the host's resolver\n"
				   "nameserver %s\n%s", gw, rest.p);
	return 0;
}

int sb_net_prepare(struct sb_net *n, const struct sandbox *sb, struct err *e)
{
	const char *pasta = sb->pasta ? sb->pasta : SANDBOX_PASTA;
	if (access(pasta, X_OK) < 0)
		return err_set_errno(e, -errno, "sandbox: a step with network needs pasta '%s' "
				     "(apt-get install passt)", pasta);
	struct stat st;
	if (stat("/dev/net/tun", &st) < 0 || !S_ISCHR(st.st_mode))
		return err_set(e, -ENODEV, "sandbox: a step with network needs '/dev/net/tun' "
			       "(modprobe tun)");
	n->uid = sb->helper_uid;
	n->gid = sb->helper_gid;
	n->uid_map[0] = n->gid_map[0] = '\0';
	struct sandbox_idmap um = { 0, (uint32_t)n->uid, 1 }, gm = { 0, (uint32_t)n->gid, 1 };
	sb_map_text(&um, 1, n->uid_map, sizeof(n->uid_map));
	sb_map_text(&gm, 1, n->gid_map, sizeof(n->gid_map));

	const char *const args[] = {
		"--quiet", "--foreground", "--config-net",
		/* the gateway is the gateway, not the host's loopback */
		"--no-map-gw",
		/* configured through netlink: no DHCP, no router advertisements */
		"--no-dhcp", "--no-dhcpv6", "--no-ra",
		/* its life is the PID namespace's */
		"--no-netns-quit",
		"--userns", "/proc/self/fd/" "3", "--netns", "/proc/self/fd/" "4",
	};
	_Static_assert(PASTA_USERNS_FD == 3 && PASTA_NETNS_FD == 4, "pasta's fds");
	strv_push(&n->argv, pasta);
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		strv_push(&n->argv, args[i]);
	/* no way to the host's loopback but the ports named (by default pasta
	 * forwards every port bound there), nothing published but what a
	 * service asks for */
	if (sb->loopback_ports && *sb->loopback_ports) {
		if (strspn(sb->loopback_ports, "0123456789,") != strlen(sb->loopback_ports))
			return err_set(e, -EINVAL, "sandbox: bad loopback ports '%s'",
				       sb->loopback_ports);
		strv_push(&n->argv, "-T");
		strv_push(&n->argv, sb->loopback_ports);
	} else {
		strv_push(&n->argv, "-T");
		strv_push(&n->argv, "none");
	}
	const char *publish = sb->publish_ports ? "auto" : "none";
	strv_push(&n->argv, "-U");
	strv_push(&n->argv, "none");
	strv_push(&n->argv, "-t");
	strv_push(&n->argv, publish);
	strv_push(&n->argv, "-u");
	strv_push(&n->argv, publish);

	struct in_addr gw4 = { 0 };
	default_routes(&n->want4, &n->want6, &gw4);
	int r = dns_prepare(n, gw4);
	if (r < 0)
		return err_set_errno(e, r, "sandbox: cannot read '/etc/resolv.conf'");
	/* an IPv6-only host waits for IPv6; otherwise IPv4 is what tells
	 * that pasta is done (it configures IPv6 right after) */
	if (n->want4)
		n->want6 = false;
	n->argv_v = strv_array(&n->argv);
	return routes_prepare(n, e);
}

void sb_net_free(struct sb_net *n)
{
	strv_free(&n->argv);
	free(n->routes);
	free(n->resolv_text);
	*n = (struct sb_net)SB_NET_INIT;
}

/* ------------------------------------------------------------ child side */

static int open_ns(pid_t pid, const char *ns)
{
	char path[64] = "/proc/";
	sb_str_addu(path, sizeof(path), (unsigned long)pid);
	sb_str_add(path, sizeof(path), "/ns/");
	sb_str_add(path, sizeof(path), ns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * The process that makes the namespaces: its effective uid becomes their
 * owner, so it is pasta's user; it keeps CAP_SYS_ADMIN for the unshare only
 * (a kernel may refuse user namespaces to the unprivileged).
 */
static _Noreturn void maker(const struct sb_net *n, int made_w, int done_r)
{
	int err = 0;
	gid_t g = n->gid;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = 1u << CAP_SYS_ADMIN;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(1, &g) < 0 ||
	    setresgid(n->gid, n->gid, n->gid) < 0 || setresuid(n->uid, n->uid, n->uid) < 0 ||
	    syscall(SYS_capset, &hdr, data) < 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
		err = errno ? errno : EPERM;
	ssize_t w = write(made_w, &err, sizeof(err));
	(void)w;
	char c;
	while (read(done_r, &c, 1) < 0 && errno == EINTR)
		;
	_exit(err ? 1 : 0);
}

int sb_net_make(const struct sb_net *n, int *ret_userns, int *ret_netns, const char **what)
{
	int made[2], done[2];
	*what = "pipe";
	if (pipe2(made, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(done, O_CLOEXEC) < 0) {
		int r = -errno;
		close(made[0]);
		close(made[1]);
		return r;
	}
	*what = "fork the network's namespace maker";
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(made[0]), close(made[1]), close(done[0]), close(done[1]);
		return r;
	}
	if (pid == 0) {
		close(made[0]);
		close(done[1]);
		maker(n, made[1], done[0]);
	}
	close(made[1]);
	close(done[0]);

	int err = EIO, r = 0, ufd = -1, nfd = -1;
	ssize_t k;
	while ((k = read(made[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	close(made[0]);
	*what = "create the network's namespaces";
	if (k != (ssize_t)sizeof(err) || err)
		r = -(err ? err : EIO);
	/* root of the new user namespace is pasta's user, nobody else */
	if (r == 0) {
		*what = "write the uid map of the network's namespace";
		r = sb_write_proc(pid, "uid_map", n->uid_map);
	}
	if (r == 0) {
		*what = "write the gid map of the network's namespace";
		r = sb_write_proc(pid, "gid_map", n->gid_map);
	}
	if (r == 0) {
		*what = "open the network's namespaces";
		ufd = open_ns(pid, "user");
		nfd = ufd < 0 ? ufd : open_ns(pid, "net");
		r = nfd < 0 ? nfd : 0;
	}
	close(done[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (r < 0) {
		if (ufd >= 0)
			close(ufd);
		return r;
	}
	*ret_userns = ufd;
	*ret_netns = nfd;
	return 0;
}

/* In pasta's child: a /dev/net/tun it may open, in a mount namespace of its
 * own (the host's node may be root-only; it is not changed). */
static int tun_node(void)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=4k") < 0 ||
	    mknod("/dev/net/tun", S_IFCHR | 0666, makedev(10, 200)) < 0 ||
	    chmod("/dev/net/tun", 0666) < 0)
		return -errno;
	return 0;
}

static _Noreturn void pasta_child(const struct sb_net *n, int userns_fd, int netns_fd, int st_w)
{
	int err;
	/* the fds pasta is told about, and the exec status; nothing else */
	int u = fcntl(userns_fd, F_DUPFD_CLOEXEC, 10);
	int ns = fcntl(netns_fd, F_DUPFD_CLOEXEC, 10);
	int st = fcntl(st_w, F_DUPFD_CLOEXEC, 10);
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (u < 0 || ns < 0 || st < 0 || nul < 0 || dup2(nul, 0) < 0 ||
	    dup2(u, PASTA_USERNS_FD) < 0 || dup2(ns, PASTA_NETNS_FD) < 0 || dup2(st, 5) < 0 ||
	    fcntl(5, F_SETFD, FD_CLOEXEC) < 0)
		goto fail;
	syscall(SYS_close_range, 6U, ~0U, 0U);
	if ((err = tun_node()) < 0) {
		errno = -err;
		goto fail;
	}
	/* pasta's user, no capability, nothing to gain by exec */
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
			break;
	gid_t g = n->gid;
	if (setgroups(1, &g) < 0 || setresgid(n->gid, n->gid, n->gid) < 0 ||
	    setresuid(n->uid, n->uid, n->uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		goto fail;
	char *const env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	execve(n->argv_v[0], n->argv_v, env);
fail:
	err = errno;
	ssize_t w = write(5, &err, sizeof(err));
	(void)w;
	_exit(127);
}

int sb_net_start(const struct sb_net *n, int userns_fd, int netns_fd, const struct sb_cgroup *cg,
		 bool *ret_placed, const char **what)
{
	int st[2];
	*what = "pipe";
	if (pipe2(st, O_CLOEXEC) < 0)
		return -errno;
	*what = "fork pasta";
	pid_t pid = sb_cgroup_fork(cg, ret_placed);
	if (pid < 0) {
		int r = -errno;
		close(st[0]);
		close(st[1]);
		return r;
	}
	if (pid == 0) {
		close(st[0]);
		pasta_child(n, userns_fd, netns_fd, st[1]);
	}
	close(st[1]);
	int err = 0;
	ssize_t k;
	while ((k = read(st[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	close(st[0]);
	if (k == (ssize_t)sizeof(err)) {
		*what = "run pasta";
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -(err ? err : EIO);
	}
	return pid;
}

/* Sends the prepared route messages and checks every acknowledgement. */
int sb_net_routes(const struct sb_net *n, const char **what)
{
	*what = "open an rtnetlink socket";
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		return -errno;
	*what = "add the unreachable routes";
	int r = 0;
	if (send(s, n->routes, n->routes_len, 0) != (ssize_t)n->routes_len)
		r = -errno;
	size_t acked = 0;
	union {
		char buf[8192];
		struct nlmsghdr align;
	} u;
	while (r == 0 && acked < n->n_routes) {
		ssize_t k = recv(s, u.buf, sizeof(u.buf), 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (struct nlmsghdr *h = &u.align; NLMSG_OK(h, (size_t)k); h = NLMSG_NEXT(h, k)) {
			if (h->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *ne = NLMSG_DATA(h);
			acked++;
			if (ne->error < 0 && r == 0)
				r = ne->error;
		}
	}
	close(s);
	return r;
}

/* Looks for default routes in a batch of rtnetlink messages. */
static void scan_routes(const char *buf, ssize_t k, bool *v4, bool *v6)
{
	for (const struct nlmsghdr *h = (const struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)k);
	     h = NLMSG_NEXT(h, k)) {
		if (h->nlmsg_type != RTM_NEWROUTE)
			continue;
		const struct rtmsg *rt = NLMSG_DATA(h);
		if (rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST ||
		    rt->rtm_table != RT_TABLE_MAIN)
			continue;
		if (rt->rtm_family == AF_INET)
			*v4 = true;
		else if (rt->rtm_family == AF_INET6)
			*v6 = true;
	}
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sb_net_wait(const struct sb_net *n, int timeout_ms, const char **what)
{
	*what = "open an rtnetlink socket";
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		return -errno;
	/* subscribe first, then dump: no route can slip between the two */
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE };
	struct {
		struct nlmsghdr h;
		struct rtmsg rt;
	} req = {
		.h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETROUTE,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.rt = { .rtm_family = AF_UNSPEC },
	};
	int r = 0;
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(s, &req, sizeof(req), 0) < 0)
		r = -errno;
	bool v4 = false, v6 = false;
	uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
	union {
		char buf[16384];
		struct nlmsghdr align;
	} u;
	*what = "wait for pasta to set the network up";
	while (r == 0 && !((v4 || !n->want4) && (v6 || !n->want6))) {
		uint64_t now = mono_ms();
		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		struct pollfd p = { .fd = s, .events = POLLIN };
		int pr = poll(&p, 1, (int)(deadline - now));
		if (pr < 0 && errno != EINTR)
			r = -errno;
		if (pr <= 0)
			continue;
		ssize_t k = recv(s, u.buf, sizeof(u.buf), 0);
		if (k < 0 && errno != EINTR && errno != ENOBUFS)
			r = -errno;
		else if (k > 0)
			scan_routes(u.buf, k, &v4, &v6);
	}
	close(s);
	return r;
}

int sb_net_lo_up(const char **what)
{
	*what = "bring up 'lo'";
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (r == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
	close(s);
	return r;
}
