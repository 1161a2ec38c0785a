// SPDX-License-Identifier: Apache-2.0
/* Clients of the relay socket: accept, their frames, and the routes between client sessions and
 * guest sessions. */
#define _GNU_SOURCE
#include "supervisor/sv.h"

static void client_rearm(struct sv *sv, struct client *c)
{
	conn_watch(&c->conn, sv->ep, REF(K_CLIENT, c - sv->clients), !c->held && !c->dead);
}

/*
 * Tells every client why the sandbox is going away (an ERROR on the control
 * session), so the user reads the reason in one line instead of a lost connection.
 */
void broadcast(struct sv *sv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &sv->clients[i];

		if (!c->used || c->dead || proto_error_encode(&c->conn.tx, 0, msg) < 0)
			continue;
		c->tail_ok = false;
		client_flush(sv, c);
	}
}

/*
 * Tells the clients whose sessions the sandbox is about to end why (an INFO
 * {"notice": ...} on the control session); unlike broadcast()'s ERROR it is
 * not a failure: their commands' own exit statuses still come.
 */
void notify_sessions(struct sv *sv, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:s}", "notice", msg);
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return;
	for (unsigned int k = 0; k < MAX_ROUTES; k++) {
		const struct route *r = &sv->routes[k];
		struct client *c = r->gsid && r->client >= 0 ? &sv->clients[r->client] : NULL;
		bool told = false;

		if (!c || !c->used || c->dead)
			continue;
		/* One notice per client, however many sessions it has. */
		for (unsigned int j = 0; j < k; j++)
			told |= sv->routes[j].gsid && sv->routes[j].client == r->client;
		if (told || proto_put_frame(&c->conn.tx, PROTO_INFO, 0, text, strlen(text)) < 0)
			continue;
		c->tail_ok = false;
		client_flush(sv, c);
	}
}

struct route *route_by_gsid(struct sv *sv, uint32_t gsid)
{
	struct route *r;

	if (!gsid)
		return NULL;
	r = &sv->routes[(gsid - 1) % MAX_ROUTES];
	return r->gsid == gsid ? r : NULL;
}

static struct route *route_by_client(struct sv *sv, int client, uint32_t csid)
{
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (r->gsid && r->client == client && r->csid == csid)
			return r;
	}
	return NULL;
}

/*
 * exec.log ids name a session for the sandbox's whole life, so that
 * `msb logs --show-id` never mixes two runs' sessions: the last id given is
 * kept in the sandbox directory and each run goes on from it. (Guest
 * session ids are per boot; only the supervisor knows both.)
 */
#define SEQ_FILE "logs/last-session-id"

void seq_load(struct sv *sv)
{
	char text[16] = { 0 };
	ssize_t n;

	sv->seq_fd = openat(sv->dirfd, SEQ_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sv->seq_fd < 0) {
		log_warn("%s: %s (session ids start at 1)", SEQ_FILE, strerror(errno));
		return;
	}
	n = pread(sv->seq_fd, text, sizeof(text) - 1, 0);
	if (n > 0) {
		char *end;
		unsigned long v = strtoul(text, &end, 10);

		if (end != text && (*end == '\n' || !*end) && v < UINT32_MAX / 2)
			sv->seq = (uint32_t)v;
	}
}

static void seq_save(struct sv *sv)
{
	char text[16];
	int n = snprintf(text, sizeof(text), "%010" PRIu32 "\n", sv->seq);

	if (sv->seq_fd >= 0 && pwrite(sv->seq_fd, text, (size_t)n, 0) != n)
		log_warn_rl("%s: %s", SEQ_FILE, strerror(errno));
}

struct route *route_new(struct sv *sv, int client, uint32_t csid)
{
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (r->gsid)
			continue;
		/* gsid - 1 is the slot modulo MAX_ROUTES; the generation keeps ids fresh. */
		sv->gen++;
		*r = (struct route){ .gsid = (uint32_t)(sv->gen % (UINT32_MAX / MAX_ROUTES)) *
						     MAX_ROUTES +
					     i + 1,
				     .client = client,
				     .csid = csid,
				     .seq = ++sv->seq };
		seq_save(sv);
		sv->nroutes++;
		timer_set(sv, T_IDLE, 0);
		return r;
	}
	return NULL;
}

void route_free(struct sv *sv, struct route *r)
{
	memset(r, 0, sizeof(*r));
	sv->nroutes--;
	/* Idle: no session for --idle-timeout. */
	if (!sv->nroutes && sv->spec.idle_timeout_ms && sv->state == ST_RUNNING)
		timer_set(sv, T_IDLE, sv->spec.idle_timeout_ms);
}

/* Queues a whole frame for a client; output is merged into the previous frame where possible. */
int client_put(struct client *c, uint16_t type, uint32_t sid, const void *p, size_t n)
{
	struct buf *tx = &c->conn.tx;
	bool data = type == PROTO_STDOUT || type == PROTO_STDERR;
	int r;

	if (data && c->tail_ok && c->tail_type == type && c->tail_sid == sid &&
	    buf_size(tx) >= PROTO_HDR_SIZE + (size_t)c->tail_len &&
	    (size_t)c->tail_len + n <= PROTO_DATA_CHUNK) {
		uint8_t *hdr;

		r = buf_append(tx, p, n);
		if (r < 0)
			return r;
		/* Found after the append, which may have moved the data. */
		hdr = tx->data + tx->len - n - PROTO_HDR_SIZE - c->tail_len;
		c->tail_len += (uint32_t)n;
		put_le32(hdr, c->tail_len);
		return 0;
	}
	r = proto_put_frame(tx, type, sid, p, n);
	c->tail_ok = r == 0 && data;
	c->tail_type = type;
	c->tail_sid = sid;
	c->tail_len = (uint32_t)n;
	return r;
}

void client_flush(struct sv *sv, struct client *c)
{
	if (c->dead)
		return;
	if (conn_flush(&c->conn) < 0) {
		client_drop(sv, c, NULL);
		return;
	}
	if (buf_size(&c->conn.tx) < PROTO_HDR_SIZE + (size_t)c->tail_len)
		c->tail_ok = false; /* partly sent: no more merging into it */
	client_rearm(sv, c);
}

/* Sends the stdin credit owed to a client, as far as its queue allows. */
void client_pump(struct sv *sv, struct client *c)
{
	int ci = (int)(c - sv->clients);

	if (!c->credit || c->dead)
		return;
	c->credit = false;
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (!r->gsid || r->client != ci || !r->ack_client)
			continue;
		if (conn_tx_full(&c->conn) ||
		    proto_u32_encode(&c->conn.tx, PROTO_ACK, r->csid, r->ack_client) < 0) {
			c->credit = true;
			continue;
		}
		c->tail_ok = false;
		r->ack_client = 0;
	}
}

void client_error(struct sv *sv, struct client *c, uint32_t sid, const char *msg)
{
	if (proto_error_encode(&c->conn.tx, sid, msg) < 0) {
		client_drop(sv, c, "out of memory");
		return;
	}
	c->tail_ok = false;
	client_flush(sv, c);
}

void client_drop(struct sv *sv, struct client *c, const char *why)
{
	int ci = (int)(c - sv->clients);

	if (c->dead)
		return;
	if (why)
		log_warn_rl("dropping a client: %s", why);
	/* A client that goes away takes its sessions with it. */
	for (unsigned int i = 0; i < MAX_ROUTES; i++) {
		struct route *r = &sv->routes[i];

		if (!r->gsid || r->client != ci)
			continue;
		r->client = -1;
		/* Nobody will read what it already sent: give the guest that credit back. */
		r->ack_guest += r->out_inflight;
		r->out_inflight = 0;
		sv->acks_owed = true;
		/* One per session, once: exempt from the high-water mark. */
		if (sv->quiescing)
			r->kill_owed = true; /* sent with the credit once the snapshot is over */
		else
			proto_u32_encode(&sv->agent.tx, PROTO_SIGNAL, r->gsid, SIGKILL);
	}
	if (sv->snap.client == ci)
		sv->snap.gone = true;
	agent_pump(sv);
	agent_flush(sv);
	/* Events for @c may still be pending in this batch: the slot is reused only afterwards. */
	conn_close(&c->conn);
	c->dead = true;
	if (c->owner) {
		log_info("attached client left");
		stop(sv, 0, "killed");
	}
}

/*
 * Handles one client frame. Return: 1 done, 0 hold it (the agent queue is
 * full), -1 drop the client.
 */
static int on_client_frame(struct sv *sv, struct client *c, const struct proto_frame *f)
{
	int ci = (int)(c - sv->clients);
	struct route *r;
	uint32_t v;

	switch (f->type) {
	case PROTO_EXEC:
	case PROTO_STDIN:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
		if (conn_tx_full(&sv->agent) || sv->quiescing)
			return 0;
		break;
	default:
		break;
	}
	switch (f->type) {
	case PROTO_EXEC:
		if (sv->state != ST_RUNNING) {
			client_error(sv, c, f->sid, "sandbox is stopping");
			return 1;
		}
		if (sv->paused) {
			char msg[160];

			snprintf(msg, sizeof(msg), "sandbox %s is paused (msb resume %s)",
				 sv->spec.name, sv->spec.name);
			client_error(sv, c, f->sid, msg);
			return 1;
		}
		if (route_by_client(sv, ci, f->sid)) {
			client_error(sv, c, f->sid, "session id already in use");
			return 1;
		}
		if (f->len < 4) {
			client_error(sv, c, f->sid, "malformed exec request");
			return 1;
		}
		r = route_new(sv, ci, f->sid);
		if (!r) {
			client_error(sv, c, f->sid, "too many sessions in this sandbox");
			return 1;
		}
		v = get_le32(f->payload);
		r->tty = v & PROTO_EXEC_TTY;
		r->main = v & PROTO_EXEC_MAIN;
		if (proto_put_frame(&sv->agent.tx, f->type, r->gsid, f->payload, f->len) < 0) {
			route_free(sv, r);
			client_error(sv, c, f->sid, "out of memory");
			return 1;
		}
		/* MAIN is for the supervisor only: the guest sees a plain request. */
		put_le32(sv->agent.tx.data + sv->agent.tx.len - f->len, v & ~PROTO_EXEC_MAIN);
		return 1;
	case PROTO_STDIN:
	case PROTO_ACK:
	case PROTO_RESIZE:
	case PROTO_SIGNAL:
		r = route_by_client(sv, ci, f->sid);
		if (!r) {
			/* Harmless race with the session's end: stay quiet for those. */
			if (f->type != PROTO_ACK && f->type != PROTO_STDIN)
				client_error(sv, c, f->sid, "no such session");
			return 1;
		}
		if (f->type == PROTO_ACK) {
			if (proto_u32_decode(f->payload, f->len, &v) < 0)
				return -1;
			if (v > r->out_inflight)
				v = r->out_inflight;
			r->out_inflight -= v;
			r->ack_guest += v;
			sv->acks_owed = true;
			return 1;
		}
		if (f->type == PROTO_STDIN) {
			if (f->len > PROTO_WINDOW - r->in_inflight)
				return -1; /* the client ignored its window */
			r->in_inflight += f->len;
		}
		if (proto_put_frame(&sv->agent.tx, f->type, r->gsid, f->payload, f->len) < 0)
			return -1;
		return 1;
	case PROTO_SHUTDOWN:
		if (proto_u32_decode(f->payload, f->len, &v) < 0)
			v = 0;
		stop(sv, v, "stopped");
		return 1;
	case PROTO_KILL:
		kill_now(sv, "killed");
		return 1;
	case PROTO_INFO:
		info_request(sv, c);
		return 1;
	case PROTO_CTL:
		on_ctl(sv, c, f);
		return 1;
	case PROTO_DETACH:
		r = route_by_client(sv, ci, f->sid);
		if (r) {
			/* The session goes on; its output is still logged, and acknowledged here.
			 */
			r->client = -1;
			r->ack_guest += r->out_inflight;
			r->out_inflight = 0;
			sv->acks_owed = true;
		}
		if (c->owner) {
			log_info("attached client detached; the sandbox runs on");
			c->owner = false;
			sv->attached = false;
		}
		return 1;
	default:
		client_error(sv, c, f->sid, "unexpected frame type");
		return 1;
	}
}

/* Handles the frames a client has sent, until its rx is empty or a frame must wait. */
static void client_process(struct sv *sv, struct client *c)
{
	struct proto_frame f;
	int r = 0;

	c->held = false;
	while (!c->dead && (r = proto_parse(&c->conn.rx, &f)) > 0) {
		int done = on_client_frame(sv, c, &f);

		if (done < 0) {
			client_drop(sv, c, "protocol error");
			return;
		}
		if (done == 0) {
			c->held = true;
			break;
		}
		conn_consume(&c->conn, PROTO_HDR_SIZE + f.len);
	}
	if (c->dead)
		return;
	if (!c->held && r < 0) {
		client_drop(sv, c, "malformed frame");
		return;
	}
	if (!c->held && c->conn.eof) {
		client_drop(sv, c, NULL);
		return;
	}
	agent_pump(sv);
	agent_flush(sv);
	client_rearm(sv, c);
}

void client_read(struct sv *sv, struct client *c)
{
	if (c->dead || c->held)
		return;
	if (conn_fill(&c->conn, READ_BUDGET) < 0) {
		client_drop(sv, c, NULL);
		return;
	}
	client_process(sv, c);
}

/* The agent queue drained below its mark: let held clients go on. */
void clients_resume(struct sv *sv)
{
	for (int i = 0; i < MAX_CLIENTS && !conn_tx_full(&sv->agent); i++) {
		struct client *c = &sv->clients[i];

		if (c->used && !c->dead && c->held)
			client_process(sv, c);
	}
}

void on_accept(struct sv *sv)
{
	for (;;) {
		int fd = accept4(sv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c = NULL;

		if (fd < 0)
			return;
		for (int i = 0; i < MAX_CLIENTS && !c; i++)
			if (!sv->clients[i].used)
				c = &sv->clients[i];
		if (!c) {
			log_warn_rl("too many clients (%d); refusing one", MAX_CLIENTS);
			close(fd);
			continue;
		}
		*c = (struct client){ .used = true };
		conn_init(&c->conn, fd, CLIENT_TX_HWM, RX_MAX);
		if (sv->attached && !sv->owner_seen) {
			c->owner = true;
			sv->owner_seen = true;
			timer_set(sv, T_OWNER, 0);
		}
		client_rearm(sv, c);
	}
}

/* Frees the slots of clients dropped during the last batch of events. */
void bury(struct sv *sv)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (sv->clients[i].used && sv->clients[i].dead)
			sv->clients[i] = (struct client){ 0 };
}
