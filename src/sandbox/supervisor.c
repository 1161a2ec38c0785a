// SPDX-License-Identifier: Apache-2.0
/*
 * The per-sandbox supervisor: owns the VM, the agent link and the relay
 * socket, and maps each client's sessions onto guest sessions.
 */
#define _GNU_SOURCE
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/proto.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/sock.h"
#include "util/text.h"
#include "vm/layers.h"
#include "vm/vm.h"

#define BOOT_TIMEOUT_MS	     60000
#define OWNER_CONNECT_MS     30000
#define STOP_EXTRA_MS	     5000
#define QUIT_WAIT_MS	     3000
#define SIGNAL_STOP_GRACE_MS 10000
/* How much one read from a socket takes at most. */
#define READ_CHUNK ((size_t)64 * 1024)

enum kind { K_SIG = 1, K_LISTEN, K_AGENT, K_TIMER, K_CLIENT };

struct src {
	enum kind kind;
};

struct client {
	struct src src; /* first: epoll data points here */
	int fd;
	uint32_t ev;
	struct buf rx, tx;
	bool owner;
	bool dead; /* dropped; freed after the current event batch */
	struct client *next;
};

/* A guest session, and which client session it belongs to (none once it left). */
struct route {
	uint32_t gsid;
	struct client *c;
	uint32_t csid;
	struct route *next;
};

enum state { ST_BOOTING, ST_RUNNING, ST_STOPPING, ST_QUITTING, ST_KILLING };

struct sv {
	struct sbx_spec spec;
	char *dir;
	int dirfd, ep, sigfd, listen_fd, agent_fd, qmp_fd, timer_fd, log_fd;
	uint32_t agent_ev;
	struct buf arx, atx;
	struct client *clients;
	struct client *graveyard;
	struct route *routes;
	uint32_t next_gsid;
	struct vm *vm;
	int ready_fd;
	enum vm_accel accel;
	bool attached, owner_seen;
	enum state state;
	struct src s_sig, s_listen, s_agent, s_timer;
};

static void set_timer(struct sv *sv, uint64_t ms)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	if (!ms)
		its.it_value.tv_nsec = 0;
	timerfd_settime(sv->timer_fd, 0, &its, NULL);
}

static void ep_set(struct sv *sv, int fd, void *ptr, uint32_t want, uint32_t *cur)
{
	struct epoll_event ev = { .events = want, .data.ptr = ptr };

	if (want == *cur)
		return;
	epoll_ctl(sv->ep, !want ? EPOLL_CTL_DEL : *cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
	*cur = want;
}

static bool ready_report(struct sv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Tells the process that started us how boot went; only the first report
 * counts. Return: false if nobody was there to hear it.
 */
static bool ready_report(struct sv *sv, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n, r = -EPIPE;

	if (sv->ready_fd < 0)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n > 0) {
		if ((size_t)n > sizeof(line) - 2)
			n = sizeof(line) - 2;
		line[n++] = '\n';
		r = write_all(sv->ready_fd, line, (size_t)n);
	}
	close(sv->ready_fd);
	sv->ready_fd = -1;
	return r == 0;
}

/* The last non-empty line the guest printed, for error messages. */
static void kernel_log_tail(char *out, size_t len)
{
	_cleanup_free_ char *text = NULL;
	char *end, *start;
	size_t n;

	out[0] = '\0';
	if (read_file("logs/kernel.log", 1 << 20, &text, &n) < 0 || !n)
		return;
	end = text + n;
	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = '\0';
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	/* The guest wrote this: keep it printable. */
	text_sanitize(out, len, start, strlen(start));
}

static void agent_flush(struct sv *sv)
{
	while (buf_size(&sv->atx)) {
		ssize_t n = write(sv->agent_fd, buf_head(&sv->atx), buf_size(&sv->atx));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		buf_consume(&sv->atx, (size_t)n);
	}
	ep_set(sv, sv->agent_fd, &sv->s_agent, EPOLLIN | (buf_size(&sv->atx) ? EPOLLOUT : 0),
	       &sv->agent_ev);
}

static void client_flush(struct sv *sv, struct client *c)
{
	while (buf_size(&c->tx)) {
		ssize_t n = send(c->fd, buf_head(&c->tx), buf_size(&c->tx), MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		buf_consume(&c->tx, (size_t)n);
	}
	ep_set(sv, c->fd, c, EPOLLIN | (buf_size(&c->tx) ? EPOLLOUT : 0), &c->ev);
}

static void stop(struct sv *sv, uint32_t grace_ms)
{
	if (sv->state >= ST_STOPPING)
		return;
	/*
	 * An ephemeral sandbox's writable layer is tmpfs and is thrown away:
	 * there is nothing to flush, so a graceful power-off only costs time.
	 */
	if (sv->spec.ephemeral && grace_ms == 0) {
		log_info("stopping: ephemeral sandbox, ending the VM now");
		vm_kill(sv->vm);
		sv->state = ST_KILLING;
		return;
	}
	if (sv->state == ST_RUNNING &&
	    proto_u32_encode(&sv->atx, PROTO_SHUTDOWN, 0, grace_ms) == 0) {
		log_info("stopping (grace %" PRIu32 " ms)", grace_ms);
		agent_flush(sv);
		sv->state = ST_STOPPING;
		set_timer(sv, (uint64_t)grace_ms + STOP_EXTRA_MS);
		return;
	}
	log_info("stopping: killing the VM");
	vm_kill(sv->vm);
	sv->state = ST_KILLING;
}

static struct route *route_by_gsid(struct sv *sv, uint32_t gsid)
{
	for (struct route *r = sv->routes; r; r = r->next)
		if (r->gsid == gsid)
			return r;
	return NULL;
}

static struct route *route_by_client(struct sv *sv, struct client *c, uint32_t csid)
{
	for (struct route *r = sv->routes; r; r = r->next)
		if (r->c == c && r->csid == csid)
			return r;
	return NULL;
}

static void route_del(struct sv *sv, struct route *dead)
{
	for (struct route **pp = &sv->routes; *pp; pp = &(*pp)->next) {
		if (*pp == dead) {
			*pp = dead->next;
			free(dead);
			return;
		}
	}
}

static void client_drop(struct sv *sv, struct client *c)
{
	/* A client that goes away takes its sessions with it. */
	for (struct route *r = sv->routes; r; r = r->next) {
		if (r->c != c)
			continue;
		r->c = NULL;
		proto_u32_encode(&sv->atx, PROTO_SIGNAL, r->gsid, SIGKILL);
	}
	agent_flush(sv);
	ep_set(sv, c->fd, c, 0, &c->ev);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	buf_free(&c->rx);
	buf_free(&c->tx);
	for (struct client **pp = &sv->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	/* Events for @c may still be pending in this batch: free it afterwards. */
	c->next = sv->graveyard;
	sv->graveyard = c;
	if (c->owner) {
		log_info("attached client left");
		stop(sv, 0);
	}
}

static void bury(struct sv *sv)
{
	while (sv->graveyard) {
		struct client *c = sv->graveyard;

		sv->graveyard = c->next;
		free(c);
	}
}

static void client_error(struct sv *sv, struct client *c, uint32_t sid, const char *msg)
{
	proto_error_encode(&c->tx, sid, msg);
	client_flush(sv, c);
}

/* Return: false if the client must be dropped. */
static bool on_client_frame(struct sv *sv, struct client *c, const struct proto_frame *f)
{
	struct route *r;

	switch (f->type) {
	case PROTO_EXEC:
		if (sv->state != ST_RUNNING) {
			client_error(sv, c, f->sid, "sandbox is stopping");
			return true;
		}
		if (route_by_client(sv, c, f->sid)) {
			client_error(sv, c, f->sid, "session id already in use");
			return true;
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return false;
		do {
			r->gsid = ++sv->next_gsid;
		} while (r->gsid == 0 || route_by_gsid(sv, r->gsid));
		r->c = c;
		r->csid = f->sid;
		r->next = sv->routes;
		sv->routes = r;
		proto_put_frame(&sv->atx, f->type, r->gsid, f->payload, f->len);
		agent_flush(sv);
		return true;
	case PROTO_STDIN:
	case PROTO_ACK:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
		r = route_by_client(sv, c, f->sid);
		if (!r) {
			/* Harmless race with the session's end: stay quiet for those. */
			if (f->type != PROTO_ACK && f->type != PROTO_STDIN)
				client_error(sv, c, f->sid, "no such session");
			return true;
		}
		proto_put_frame(&sv->atx, f->type, r->gsid, f->payload, f->len);
		agent_flush(sv);
		return true;
	case PROTO_SHUTDOWN: {
		uint32_t grace = 0;

		if (proto_u32_decode(f->payload, f->len, &grace) < 0)
			grace = 0;
		stop(sv, grace);
		return true;
	}
	default:
		client_error(sv, c, f->sid, "unexpected frame type");
		return true;
	}
}

static void client_read(struct sv *sv, struct client *c)
{
	for (;;) {
		uint8_t *p = buf_tail(&c->rx, READ_CHUNK);
		struct proto_frame f;
		ssize_t n;
		int r;

		if (!p) {
			client_drop(sv, c);
			return;
		}
		n = recv(c->fd, p, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			client_drop(sv, c);
			return;
		}
		buf_commit(&c->rx, (size_t)n);
		while ((r = proto_parse(&c->rx, &f)) > 0) {
			if (!on_client_frame(sv, c, &f)) {
				client_drop(sv, c);
				return;
			}
			buf_consume(&c->rx, PROTO_HDR_SIZE + f.len);
		}
		if (r < 0) {
			log_warn("client sent a malformed frame: %s", strerror(-r));
			client_drop(sv, c);
			return;
		}
	}
}

static void on_ready(struct sv *sv, const struct proto_frame *f)
{
	struct proto_ready rd;

	if (sv->state != ST_BOOTING) {
		log_warn("agent sent READY twice; ignored");
		return;
	}
	if (proto_ready_decode(f->payload, f->len, &rd) < 0 || rd.version != PROTO_VERSION) {
		log_error("agent speaks protocol version %" PRIu32 ", expected %d", rd.version,
			  PROTO_VERSION);
		ready_report(sv,
			     "err 125 guest agent speaks protocol version %" PRIu32
			     ", expected %d (rebuild with 'make')",
			     rd.version, PROTO_VERSION);
		stop(sv, 0);
		return;
	}
	sv->state = ST_RUNNING;
	log_info("agent ready: kernel %.1f ms, agent %.1f ms after guest boot",
		 (double)rd.kernel_ns / 1e6, (double)rd.ready_ns / 1e6);
	if (!ready_report(sv, "ok %" PRIu64 " %" PRIu64 " %s", rd.kernel_ns, rd.ready_ns,
			  vm_accel_name(sv->accel)) &&
	    sv->attached) {
		log_info("the process that started the sandbox is gone");
		stop(sv, 0);
		return;
	}
	/* From now on the attached user should hear why the sandbox died, if it does. */
	if (sv->attached)
		log_setup(sv->log_fd, sv->spec.log_level,
			  sv->spec.log_level >= LOG_DEBUG ? sv->spec.log_level : LOG_ERROR);
	if (sv->attached && !sv->owner_seen)
		set_timer(sv, OWNER_CONNECT_MS);
}

/* Return: false when the guest broke the protocol and must be stopped. */
static bool on_agent_frame(struct sv *sv, const struct proto_frame *f)
{
	struct route *r;
	char msg[256];

	if (f->sid == 0) {
		if (f->type == PROTO_READY) {
			on_ready(sv, f);
			return true;
		}
		if (f->type == PROTO_ERROR &&
		    proto_error_decode(f->payload, f->len, msg, sizeof(msg)) == 0) {
			log_warn("agent: %s", msg);
			return true;
		}
		return false;
	}
	if (f->type == PROTO_EXEC || f->type == PROTO_STDIN || f->type == PROTO_RESIZE ||
	    f->type == PROTO_SIGNAL)
		return false; /* host-to-guest types coming the wrong way */
	r = route_by_gsid(sv, f->sid);
	if (!r) {
		log_debug("agent frame %s for unknown session %" PRIu32 " dropped",
			  proto_type_name(f->type), f->sid);
		return true;
	}
	if (r->c) {
		proto_put_frame(&r->c->tx, f->type, r->csid, f->payload, f->len);
		client_flush(sv, r->c);
	} else if (f->type == PROTO_STDOUT || f->type == PROTO_STDERR) {
		/* Nobody reads an orphan's output; keep its window open so it can end. */
		proto_u32_encode(&sv->atx, PROTO_ACK, r->gsid, f->len);
		agent_flush(sv);
	}
	if (f->type == PROTO_EXITED || f->type == PROTO_FAILED)
		route_del(sv, r);
	return true;
}

static void agent_read(struct sv *sv)
{
	for (;;) {
		uint8_t *p = buf_tail(&sv->arx, READ_CHUNK);
		struct proto_frame f;
		ssize_t n;
		int r;

		if (!p)
			return;
		n = recv(sv->agent_fd, p, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			ep_set(sv, sv->agent_fd, &sv->s_agent, 0, &sv->agent_ev);
			return; /* the VM is going away; SIGCHLD follows */
		}
		buf_commit(&sv->arx, (size_t)n);
		while ((r = proto_parse(&sv->arx, &f)) > 0) {
			if (!on_agent_frame(sv, &f)) {
				r = -EPROTO;
				break;
			}
			buf_consume(&sv->arx, PROTO_HDR_SIZE + f.len);
		}
		if (r < 0) {
			/* The guest is not trusted: a protocol violation ends the sandbox. */
			log_error("guest agent violated the protocol (%s); stopping the VM",
				  strerror(-r));
			ep_set(sv, sv->agent_fd, &sv->s_agent, 0, &sv->agent_ev);
			buf_clear(&sv->arx);
			vm_kill(sv->vm);
			sv->state = ST_KILLING;
			return;
		}
	}
}

static void on_accept(struct sv *sv)
{
	for (;;) {
		int fd = accept4(sv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->src.kind = K_CLIENT;
		c->fd = fd;
		if (sv->attached && !sv->owner_seen) {
			c->owner = true;
			sv->owner_seen = true;
			set_timer(sv, 0);
		}
		c->next = sv->clients;
		sv->clients = c;
		ep_set(sv, fd, c, EPOLLIN, &c->ev);
	}
}

static void on_timer(struct sv *sv)
{
	uint64_t x;
	char tail[512];

	(void)!read(sv->timer_fd, &x, sizeof(x));
	switch (sv->state) {
	case ST_BOOTING:
		kernel_log_tail(tail, sizeof(tail));
		log_error("guest did not become ready within %d s", BOOT_TIMEOUT_MS / 1000);
		ready_report(sv, "err 125 sandbox %s: guest did not become ready within %d s%s%s",
			     sv->spec.name, BOOT_TIMEOUT_MS / 1000, *tail ? ": " : "", tail);
		vm_kill(sv->vm);
		sv->state = ST_KILLING;
		break;
	case ST_RUNNING:
		if (sv->attached && !sv->owner_seen) {
			log_warn("attached client never connected");
			stop(sv, 0);
		}
		break;
	case ST_STOPPING:
		log_warn("guest did not power off in time; quitting the VM");
		vm_quit(sv->vm);
		sv->state = ST_QUITTING;
		set_timer(sv, QUIT_WAIT_MS);
		break;
	case ST_QUITTING:
		vm_kill(sv->vm);
		sv->state = ST_KILLING;
		break;
	case ST_KILLING:
		break;
	}
}

/* Return: true once the VM is gone. */
static bool on_signal(struct sv *sv)
{
	struct signalfd_siginfo si;
	bool gone = false;

	while (read(sv->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGCHLD) {
			log_info("signal %u received", si.ssi_signo);
			stop(sv, SIGNAL_STOP_GRACE_MS);
		}
	}
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);

		if (pid <= 0)
			break;
		if (pid != vm_pid(sv->vm))
			continue;
		vm_reaped(sv->vm, st);
		gone = true;
		if (sv->state == ST_BOOTING) {
			char tail[512];

			kernel_log_tail(tail, sizeof(tail));
			log_error("VM exited during boot (status %d)", st);
			ready_report(sv,
				     "err 125 sandbox %s: guest failed to boot%s%s (see %s/logs)",
				     sv->spec.name, *tail ? ": " : "", tail, sv->dir);
		} else if (sv->state == ST_RUNNING) {
			char tail[512];

			kernel_log_tail(tail, sizeof(tail));
			log_error("VM exited unexpectedly%s%s", *tail ? ": " : "", tail);
		} else {
			log_info("VM stopped");
		}
	}
	return gone;
}

static int setup(struct sv *sv, struct msb_err **err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL, *extra = NULL, *layer_disk = NULL;
	struct vm_disk disks[2];
	struct vm_config cfg = { 0 };
	enum vm_accel accel;
	char why[256];
	size_t n = 0;
	sigset_t set;
	int sv_agent[2], sv_qmp[2], r;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	sv->ep = epoll_create1(EPOLL_CLOEXEC);
	sv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (sv->sigfd < 0 || sv->ep < 0 || sv->timer_fd < 0)
		return msb_err_sys(err, errno, "supervisor setup");

	if (vm_accel_detect(&accel, why, sizeof(why), err) < 0)
		return -1;
	sv->accel = accel;
	log_info("accelerator: %s (%s)", vm_accel_name(accel), why);

	r = msb_lib_file("vmlinux", &kernel, err);
	if (!r)
		r = msb_lib_file("initrd.cpio", &initrd, err);
	if (r < 0)
		return -1;

	while (sv->spec.layers[n])
		n++;
	if (vm_layers_disk(".", sv->spec.layers, n, &layer_disk, err) < 0)
		return -1;
	disks[0] = (struct vm_disk){ .path = layer_disk, .format = "vmdk", .readonly = true };
	disks[1] = (struct vm_disk){ .path = "upper.ext4", .format = "raw", .readonly = false };
	if (asprintf(&extra, "msb.upper=%s msb.hostname=%s", sv->spec.upper_mib ? "disk" : "tmpfs",
		     sv->spec.hostname) < 0) {
		extra = NULL;
		return msb_err_sys(err, ENOMEM, "supervisor");
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_agent) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv_qmp) < 0) {
		return msb_err_sys(err, errno, "socketpair");
	}
	sv->agent_fd = sv_agent[0];
	sv->qmp_fd = sv_qmp[0];
	cfg = (struct vm_config){
		.accel = accel,
		.cpus = sv->spec.cpus,
		.mem_mib = sv->spec.mem_mib,
		.kernel = kernel,
		.initrd = initrd,
		.cmdline_extra = extra,
		.disks = disks,
		.ndisks = sv->spec.upper_mib ? 2 : 1,
		.console_log = "logs/kernel.log",
		.agent_fd = sv_agent[1],
		.qmp_fd = sv_qmp[1],
		.stderr_fd = sv->log_fd,
	};
	r = vm_start(&cfg, &sv->vm, err);
	close(sv_agent[1]);
	close(sv_qmp[1]);
	if (r < 0)
		return -1;
	log_info("vm started: pid %d, %u vcpu, %u MiB, %zu layer(s)", (int)vm_pid(sv->vm),
		 sv->spec.cpus, sv->spec.mem_mib, n);

	sv->listen_fd = unix_listen_at(sv->dirfd, "relay.sock");
	if (sv->listen_fd < 0)
		return msb_err_sys(err, -sv->listen_fd, "%s/relay.sock", sv->dir);
	sv->s_sig.kind = K_SIG;
	sv->s_listen.kind = K_LISTEN;
	sv->s_agent.kind = K_AGENT;
	sv->s_timer.kind = K_TIMER;
	{
		uint32_t cur = 0;

		ep_set(sv, sv->sigfd, &sv->s_sig, EPOLLIN, &cur);
		cur = 0;
		ep_set(sv, sv->listen_fd, &sv->s_listen, EPOLLIN, &cur);
		cur = 0;
		ep_set(sv, sv->timer_fd, &sv->s_timer, EPOLLIN, &cur);
	}
	ep_set(sv, sv->agent_fd, &sv->s_agent, EPOLLIN, &sv->agent_ev);
	set_timer(sv, BOOT_TIMEOUT_MS);
	return 0;
}

static void teardown(struct sv *sv)
{
	while (sv->clients)
		client_drop(sv, sv->clients);
	bury(sv);
	while (sv->routes)
		route_del(sv, sv->routes);
	vm_free(sv->vm);
	if (sv->listen_fd >= 0) {
		close(sv->listen_fd);
		unlinkat(sv->dirfd, "relay.sock", 0);
	}
	buf_free(&sv->arx);
	buf_free(&sv->atx);
	if (sv->spec.ephemeral) {
		/* Nothing of an ephemeral sandbox outlives it. */
		if (chdir("/") == 0)
			rm_rf(sv->dir);
	}
}

int sbx_supervise(const char *name, int ready_fd, bool attached)
{
	_cleanup_err_ struct msb_err *err = NULL;
	struct sv sv = { .ready_fd = ready_fd,
			 .attached = attached,
			 .listen_fd = -1,
			 .agent_fd = -1,
			 .qmp_fd = -1,
			 .log_fd = -1,
			 .dirfd = -1 };
	int null;

	setsid();
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (!attached)
			dup2(null, 2);
		close(null);
	}
	sv.dir = sbx_dir(name);
	if (!sv.dir || chdir(sv.dir) < 0 ||
	    (sv.dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		ready_report(&sv, "err 125 sandbox %s: not found", name);
		return 1;
	}
	if (sbx_spec_load(name, &sv.spec, &err) < 0) {
		ready_report(&sv, "err 125 %s", err->msg);
		return 1;
	}
	sv.log_fd = open("logs/runtime.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	log_setup(sv.log_fd, sv.spec.log_level,
		  sv.spec.log_level >= LOG_DEBUG && attached ? sv.spec.log_level : LOG_NONE);
	log_info("--- sandbox %s starting (supervisor pid %d) ---", name, (int)getpid());

	if (setup(&sv, &err) < 0) {
		log_error("%s", err->msg);
		ready_report(&sv, "err %d %s", err->exit, err->msg);
		vm_free(sv.vm);
		sv.vm = NULL;
		teardown(&sv);
		return 1;
	}

	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(sv.ep, evs, 32, -1);
		bool gone = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			struct src *s = evs[i].data.ptr;

			switch (s->kind) {
			case K_SIG:
				gone |= on_signal(&sv);
				break;
			case K_LISTEN:
				on_accept(&sv);
				break;
			case K_TIMER:
				on_timer(&sv);
				break;
			case K_AGENT:
				if (evs[i].events & EPOLLOUT)
					agent_flush(&sv);
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					agent_read(&sv);
				break;
			case K_CLIENT: {
				struct client *c = (struct client *)s;

				if (!c->dead && (evs[i].events & EPOLLOUT))
					client_flush(&sv, c);
				if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					client_read(&sv, c);
				break;
			}
			}
		}
		bury(&sv);
		if (gone)
			break;
	}
	if (attached)
		log_setup(sv.log_fd, sv.spec.log_level, LOG_NONE);
	log_info("--- sandbox %s stopped ---", name);
	teardown(&sv);
	ready_report(&sv, "err 125 sandbox %s stopped during boot", name);
	sbx_spec_free(&sv.spec);
	free(sv.dir);
	return 0;
}
