/*
 * pacer: an open-loop HTTP/1.1 load generator that holds a fixed request rate
 * with sub-millisecond pacing, for kiln's router latency benchmark.
 *
 * Why it exists: the Python generator (benchmarks/loadgen.py) can only wake every
 * millisecond (the event loop's timers), so its requests leave in 1 ms batches
 * and its own send lag is larger than the sub-millisecond latency it is asked to
 * resolve. This one sleeps in epoll_pwait2(2), whose timeout is a timespec served
 * by a high-resolution timer, with the timer slack set to 1 ns (prctl(2)
 * PR_SET_TIMERSLACK), so requests leave within a fraction of a millisecond of
 * when they are due.
 *
 * Requests are due at start + i / rate (or at Poisson arrivals with -p).
 * Each is timed from the moment it was *due*, so a stalled target shows as
 * latency instead of a lower offered rate (no coordinated omission); the time
 * from the actual write (service) and the generator's own lateness (send lag)
 * are reported beside it. One request in flight per keep-alive connection;
 * a due request waits for a free connection in a FIFO backlog.
 *
 * A timer wake-up is not free (on this project's VM one cost 20-30 us of CPU in
 * a one-off check), so the generator wakes at most once per quantum
 * (-q, default 100 us) and sends everything due by then: requests leave at most
 * a quantum late, ten times finer than the Python generator's batches.
 *
 * Several targets (-t, up to 4) are measured in ONE run, so that a machine's
 * stalls (hypervisor steal, a neighbour's burst) fall on every target alike and
 * the difference of two targets' percentiles is the difference of the targets,
 * not of the moments they were measured at. Two ways:
 *   -W MS (default 100): alternating windows; the requests due in window k go to
 *         target k mod n, each target at the full rate in its windows;
 *   -W 0: interleaved; every target gets the full rate at once, request i going
 *         to target i mod n (n times the requests in all), so each request to
 *         one target has a neighbour in time to every other.
 * Each target keeps its own pool of connections, open before the first request.
 *
 * Build:  cc -O2 -o pacer benchmarks/pacer.c -lm
 * Run:    pacer -t 127.0.0.1:8080 [-t 127.0.0.1:8081] -r 5000 [-u /] [-d 5] [-c 32]
 *               [-w 0.5] [-W 100] [-q 100] [-p] [-s SEED]
 * Output: one JSON object on stdout: {"targets": [...]}, each with the keys of
 *         benchmarks/loadgen.py (rate and latency per target); with -o, also a
 *         CSV of every measured answer (target index, due time from the start,
 *         send lag, latency, all in ns; status), to see when a tail happened.
 * Exit:   0 measured (errors are counted, not fatal), 2 bad arguments,
 *         3 cannot connect or out of memory.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 16384
#define MAX_CONN 1024
#define MAX_TARGETS 4

enum body { B_NONE, B_LENGTH, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF, B_TRAILER };

struct samples {
    uint64_t *v;
    size_t n, cap;
};

struct target {
    struct sockaddr_in addr;
    char name[64];
    char request[1024];
    size_t request_len;
    int first, count;    /* its connections: conns[first .. first+count) */
    int idle[MAX_CONN];  /* indexes of its idle connections */
    int nidle;
    uint64_t *backlog;   /* due times waiting for a free connection (a ring) */
    size_t bl_head, bl_len, bl_cap;
    struct samples lat, lag, svc;
    uint64_t completed, errors, sent;
};

struct conn {
    int fd;
    int target;
    int busy;           /* a request is in flight */
    int connected;      /* the non-blocking connect finished */
    uint64_t due, sent; /* of the request in flight (ns, CLOCK_MONOTONIC) */
    /* the response parser */
    char head[BUF];
    size_t head_len;
    int in_body;
    int status;
    enum body body;
    uint64_t remaining; /* body bytes (length) or chunk bytes left */
    char line[64];      /* a chunk-size or trailer line being read */
    size_t line_len;
    int close_after;    /* "Connection: close" */
};

static struct {
    int epfd;
    struct target targets[MAX_TARGETS];
    int ntargets;
    FILE *samples; /* -o: one line per measured answer, or NULL */
    uint64_t start;
    struct conn conns[MAX_CONN * MAX_TARGETS];
    int nconns;
    uint64_t count_from;
} g;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(int code, const char *what) {
    fprintf(stderr, "pacer: %s: %s\n", what, strerror(errno));
    exit(code);
}

static void push(struct samples *s, uint64_t value) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) die(3, "out of memory");
    }
    s->v[s->n++] = value;
}

static void backlog_push(struct target *t, uint64_t due) {
    if (t->bl_len == t->bl_cap) {
        size_t cap = t->bl_cap ? t->bl_cap * 2 : 4096;
        uint64_t *ring = malloc(cap * sizeof *ring);
        if (!ring) die(3, "out of memory");
        for (size_t i = 0; i < t->bl_len; i++) ring[i] = t->backlog[(t->bl_head + i) % t->bl_cap];
        free(t->backlog);
        t->backlog = ring;
        t->bl_cap = cap;
        t->bl_head = 0;
    }
    t->backlog[(t->bl_head + t->bl_len) % t->bl_cap] = due;
    t->bl_len++;
}

static uint64_t backlog_pop(struct target *t) {
    uint64_t due = t->backlog[t->bl_head];
    t->bl_head = (t->bl_head + 1) % t->bl_cap;
    t->bl_len--;
    return due;
}

static void reset_parser(struct conn *c) {
    c->head_len = 0;
    c->in_body = 0;
    c->status = 0;
    c->body = B_NONE;
    c->remaining = 0;
    c->line_len = 0;
    c->close_after = 0;
}

static int conn_index(const struct conn *c) { return (int)(c - g.conns); }

static void watch(struct conn *c, int op, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)conn_index(c)};
    if (epoll_ctl(g.epfd, op, c->fd, &ev) < 0) die(3, "epoll_ctl");
}

static void open_conn(struct conn *c) {
    struct target *t = &g.targets[c->target];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die(3, "socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->busy = 0;
    c->connected = 0;
    reset_parser(c);
    if (connect(c->fd, (struct sockaddr *)&t->addr, sizeof t->addr) < 0 && errno != EINPROGRESS)
        die(3, "connect");
    watch(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

static void drop_idle(struct target *t, int index) {
    for (int i = 0; i < t->nidle; i++) {
        if (t->idle[i] == index) {
            t->idle[i] = t->idle[--t->nidle];
            return;
        }
    }
}

/* A broken connection: its request (if any) is an error; open a new one, which
 * becomes idle when its connect completes. */
static void broken(struct conn *c) {
    struct target *t = &g.targets[c->target];
    if (c->busy && c->due >= g.count_from) t->errors++;
    drop_idle(t, conn_index(c));
    epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    open_conn(c);
}

static void send_on(struct conn *c, uint64_t due) {
    struct target *t = &g.targets[c->target];
    c->due = due;
    c->busy = 1;
    ssize_t n = send(c->fd, t->request, t->request_len, MSG_NOSIGNAL);
    uint64_t sent = now_ns();
    c->sent = sent;
    if (due >= g.count_from) push(&t->lag, sent - due);
    /* A request this small fits any socket buffer: a short write is a broken
     * connection. */
    if (n != (ssize_t)t->request_len) broken(c);
}

static void dispatch(struct target *t, uint64_t due) {
    t->sent++;
    if (t->nidle > 0) {
        send_on(&g.conns[t->idle[--t->nidle]], due);
    } else {
        backlog_push(t, due);
    }
}

static void make_idle(struct conn *c) {
    struct target *t = &g.targets[c->target];
    if (t->bl_len > 0) {
        send_on(c, backlog_pop(t));
    } else {
        t->idle[t->nidle++] = conn_index(c);
    }
}

static void answered(struct conn *c) {
    struct target *t = &g.targets[c->target];
    uint64_t done = now_ns();
    if (c->due >= g.count_from) {
        t->completed++;
        if (g.samples)
            fprintf(g.samples, "%d,%llu,%llu,%llu,%d\n", c->target, (unsigned long long)(c->due - g.start),
                    (unsigned long long)(c->sent - c->due), (unsigned long long)(done - c->due), c->status);
        if (c->status >= 200 && c->status < 400) {
            push(&t->lat, done - c->due);
            push(&t->svc, done - c->sent);
        } else {
            t->errors++;
        }
    }
    c->busy = 0;
    int reopen = c->close_after;
    reset_parser(c);
    if (reopen) {
        broken(c);
    } else {
        make_idle(c);
    }
}

/* The response head is complete in c->head[0..end): status and body framing. */
static int parse_head(struct conn *c, size_t end) {
    if (end < 12 || strncmp(c->head, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->head + 9);
    c->body = B_NONE;
    char *line = memchr(c->head, '\n', end);
    while (line && (size_t)(line - c->head) + 1 < end) {
        line++;
        char *eol = memchr(line, '\n', end - (size_t)(line - c->head));
        if (!eol) break;
        size_t len = (size_t)(eol - line);
        if (len > 15 && strncasecmp(line, "content-length:", 15) == 0) {
            c->body = B_LENGTH;
            c->remaining = strtoull(line + 15, NULL, 10);
        } else if (len > 18 && strncasecmp(line, "transfer-encoding:", 18) == 0 &&
                   memmem(line, len, "chunked", 7)) {
            c->body = B_CHUNK_SIZE;
        } else if (len > 11 && strncasecmp(line, "connection:", 11) == 0 && memmem(line, len, "close", 5)) {
            c->close_after = 1;
        }
        line = eol;
    }
    if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200)) c->body = B_NONE;
    if (c->body == B_LENGTH && c->remaining == 0) c->body = B_NONE;
    return 0;
}

/* Feed body bytes; return how many were used, and set *done at the body's end. */
static size_t feed_body(struct conn *c, const char *p, size_t n, int *done) {
    size_t used = 0;
    while (used < n && !*done) {
        switch (c->body) {
        case B_NONE:
            *done = 1;
            break;
        case B_LENGTH:
        case B_CHUNK_DATA: {
            uint64_t take = n - used < c->remaining ? n - used : c->remaining;
            used += take;
            c->remaining -= take;
            if (c->remaining == 0) {
                if (c->body == B_LENGTH) {
                    *done = 1;
                } else {
                    c->body = B_CHUNK_CRLF;
                }
            }
            break;
        }
        case B_CHUNK_CRLF:
            if (p[used++] == '\n') c->body = B_CHUNK_SIZE;
            break;
        case B_CHUNK_SIZE:
        case B_TRAILER: {
            char ch = p[used++];
            if (ch != '\n') {
                if (c->line_len < sizeof c->line - 1) c->line[c->line_len++] = ch;
                break;
            }
            size_t len = c->line_len;
            if (len && c->line[len - 1] == '\r') len--;
            c->line[len] = '\0';
            c->line_len = 0;
            if (c->body == B_TRAILER) {
                if (len == 0) *done = 1;
            } else {
                c->remaining = strtoull(c->line, NULL, 16);
                c->body = c->remaining ? B_CHUNK_DATA : B_TRAILER;
            }
            break;
        }
        }
    }
    return used;
}

static void readable(struct conn *c) {
    char buf[BUF];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0 || !c->busy) { /* closed, failed, or bytes nobody asked for */
            broken(c);
            return;
        }
        size_t off = 0;
        int done = 0;
        if (!c->in_body) {
            size_t take = (size_t)n;
            if (c->head_len + take > sizeof c->head) take = sizeof c->head - c->head_len;
            size_t before = c->head_len;
            memcpy(c->head + before, buf, take);
            c->head_len += take;
            char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
            if (!end) {
                if (c->head_len == sizeof c->head) { /* a head too large: refuse it */
                    broken(c);
                    return;
                }
                continue;
            }
            size_t head_end = (size_t)(end - c->head) + 4;
            if (parse_head(c, head_end) < 0) {
                broken(c);
                return;
            }
            off = head_end - before; /* the bytes of this read that were head */
            c->in_body = 1;
            done = c->body == B_NONE;
        }
        if (!done) off += feed_body(c, buf + off, (size_t)n - off, &done);
        if (done) {
            if (off < (size_t)n) { /* more than one answer: not ours */
                broken(c);
                return;
            }
            answered(c);
            return; /* the next answer is for a request not yet sent */
        }
    }
}

/* A connection's connect finished (or failed): 1 when it is up. */
static int connected(struct conn *c, uint32_t events) {
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
        errno = err ? err : ECONNREFUSED;
        return 0;
    }
    c->connected = 1;
    watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
    return 1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The same rank as benchmarks/loadgen.py: values[min(n - 1, int(p / 100 * n))]. */
static double pct(struct samples *s, double p) {
    if (s->n == 0) return NAN;
    size_t i = (size_t)(p / 100.0 * (double)s->n);
    if (i > s->n - 1) i = s->n - 1;
    return (double)s->v[i] / 1e6;
}

static void json_num(const char *key, double value) {
    if (isnan(value)) {
        printf("\"%s\": NaN, ", key);
    } else {
        printf("\"%s\": %.6f, ", key, value);
    }
}

static uint64_t run_delay_ns(void) {
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run = 0, wait = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &run, &wait) != 2) wait = 0;
        fclose(f);
    }
    return wait;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(const char *why) {
    fprintf(stderr,
            "pacer: %s\n"
            "usage: pacer -t HOST:PORT [-t HOST:PORT ...] -r RATE [-u PATH] [-d SECONDS] [-c CONNECTIONS]\n"
            "             [-w WARMUP] [-W WINDOW_MS] [-q QUANTUM_US] [-p] [-s SEED] [-o SAMPLES.csv]\n",
            why);
    exit(2);
}

static void add_target(const char *spec, const char *path) {
    if (g.ntargets == MAX_TARGETS) usage("at most 4 targets (-t)");
    struct target *t = &g.targets[g.ntargets++];
    const char *colon = strrchr(spec, ':');
    char host[40];
    if (!colon || (size_t)(colon - spec) >= sizeof host) usage("-t takes IPV4:PORT");
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    int port = atoi(colon + 1);
    memset(&t->addr, 0, sizeof t->addr);
    t->addr.sin_family = AF_INET;
    t->addr.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &t->addr.sin_addr) != 1)
        usage("-t takes IPV4:PORT (a numeric IPv4 address and a port)");
    snprintf(t->name, sizeof t->name, "%s:%d", host, port & 0xffff);
    int len = snprintf(t->request, sizeof t->request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path, host,
                       port);
    if (len <= 0 || (size_t)len >= sizeof t->request) usage("the path (-u) is too long");
    t->request_len = (size_t)len;
}

/* Open every target's connections; exit 3 naming the target that refuses. */
static void connect_all(int per_target) {
    for (int k = 0; k < g.ntargets; k++) {
        struct target *t = &g.targets[k];
        t->first = g.nconns;
        t->count = per_target;
        for (int i = 0; i < per_target; i++) {
            struct conn *c = &g.conns[g.nconns++];
            c->target = k;
            open_conn(c);
        }
    }
    struct epoll_event events[256];
    uint64_t deadline = now_ns() + 5000000000ull;
    for (int up = 0; up < g.nconns;) {
        if (now_ns() > deadline) {
            fprintf(stderr, "pacer: only %d of %d connections came up in 5 s\n", up, g.nconns);
            exit(3);
        }
        int n = epoll_wait(g.epfd, events, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = &g.conns[events[i].data.u32];
            if (c->connected) continue;
            if (!connected(c, events[i].events)) {
                fprintf(stderr, "pacer: cannot connect to %s: %s\n", g.targets[c->target].name, strerror(errno));
                exit(3);
            }
            make_idle(c);
            up++;
        }
    }
}

static void print_target(struct target *t, double seconds, double offered, uint64_t unanswered,
                         double cpu_wait_ms, double cpu_us_per_req, double load) {
    qsort(t->lat.v, t->lat.n, sizeof *t->lat.v, cmp_u64);
    qsort(t->lag.v, t->lag.n, sizeof *t->lag.v, cmp_u64);
    qsort(t->svc.v, t->svc.n, sizeof *t->svc.v, cmp_u64);
    printf("{\"target\": \"%s\", ", t->name);
    json_num("offered_rps", offered);
    json_num("achieved_rps", (double)t->completed / seconds);
    printf("\"completed\": %llu, \"errors\": %llu, ", (unsigned long long)t->completed,
           (unsigned long long)(t->errors + unanswered));
    json_num("p50_ms", pct(&t->lat, 50));
    json_num("p90_ms", pct(&t->lat, 90));
    json_num("p99_ms", pct(&t->lat, 99));
    json_num("p999_ms", pct(&t->lat, 99.9));
    json_num("max_ms", t->lat.n ? (double)t->lat.v[t->lat.n - 1] / 1e6 : NAN);
    json_num("send_lag_p50_ms", pct(&t->lag, 50));
    json_num("send_lag_p99_ms", pct(&t->lag, 99));
    json_num("service_p50_ms", pct(&t->svc, 50));
    json_num("service_p99_ms", pct(&t->svc, 99));
    json_num("service_p999_ms", pct(&t->svc, 99.9));
    json_num("generator_cpu_wait_ms", cpu_wait_ms);
    json_num("generator_cpu_us_per_req", cpu_us_per_req);
    printf("\"loadavg_1m\": %.3f}", load);
}

int main(int argc, char **argv) {
    const char *specs[MAX_TARGETS * 4];
    int nspecs = 0;
    const char *path = "/", *samples = NULL;
    int poisson = 0, per_target = 32;
    double rate = 0, seconds = 5, warmup = 0.5, window_ms = 100, quantum_us = 100;
    unsigned seed = 1;
    int opt;
    while ((opt = getopt(argc, argv, "t:u:r:d:c:w:W:q:ps:o:")) != -1) {
        switch (opt) {
        case 't':
            if (nspecs == MAX_TARGETS) usage("at most 4 targets (-t)");
            specs[nspecs++] = optarg;
            break;
        case 'u': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'c': per_target = atoi(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'W': window_ms = atof(optarg); break;
        case 'q': quantum_us = atof(optarg); break;
        case 'p': poisson = 1; break;
        case 's': seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': samples = optarg; break;
        default: usage("unknown option");
        }
    }
    if (nspecs == 0) usage("no target (-t HOST:PORT)");
    if (rate <= 0) usage("-r RATE must be > 0 (requests per second to each target)");
    if (seconds <= 0 || warmup < 0 || window_ms < 0 || quantum_us < 0) usage("durations must be positive");
    if (per_target < 1 || per_target > MAX_CONN) usage("-c takes 1 to 1024 connections per target");
    if (path[0] != '/') usage("-u PATH must start with /");
    for (int i = 0; i < nspecs; i++) add_target(specs[i], path);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    srand48(seed);
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.epfd < 0) die(3, "epoll_create1");
    connect_all(per_target);
    if (samples) {
        g.samples = fopen(samples, "w");
        if (!g.samples) die(2, samples);
        fprintf(g.samples, "target,due_ns,send_lag_ns,latency_ns,status\n");
    }

    struct epoll_event events[256];
    int interleave = window_ms == 0;
    double interval = 1e9 / rate / (interleave ? g.ntargets : 1);
    uint64_t index = 0;
    uint64_t quantum = (uint64_t)(quantum_us * 1e3);
    uint64_t window = (uint64_t)(window_ms * 1e6);
    uint64_t start = now_ns();
    g.start = start;
    g.count_from = start + (uint64_t)(warmup * 1e9);
    uint64_t end = start + (uint64_t)((warmup + seconds) * 1e9);
    double next = (double)start; /* when the next request is due */
    uint64_t waited = run_delay_ns();
    double used = cpu_seconds();
    uint64_t drain_deadline = 0, last_wake = 0;
    for (;;) {
        uint64_t now = now_ns();
        last_wake = now;
        while ((uint64_t)next <= now && (uint64_t)next < end) {
            uint64_t due = (uint64_t)next;
            uint64_t slot = interleave ? index++ : (due - start) / window;
            dispatch(&g.targets[slot % (uint64_t)g.ntargets], due);
            next += poisson ? -log(1.0 - drand48()) * interval : interval;
        }
        int sending = (uint64_t)next < end;
        if (!sending) {
            if (!drain_deadline) drain_deadline = now + 5000000000ull;
            int busy = 0;
            for (int k = 0; k < g.ntargets; k++) busy |= g.targets[k].bl_len > 0;
            for (int i = 0; i < g.nconns && !busy; i++) busy = g.conns[i].busy;
            if (!busy || now >= drain_deadline) break;
        }
        uint64_t wake = sending ? (uint64_t)next : now + 10000000ull;
        if (wake < last_wake + quantum) wake = last_wake + quantum;
        uint64_t wait = wake - now;
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull), .tv_nsec = (long)(wait % 1000000000ull)};
        int n = epoll_pwait2(g.epfd, events, 256, &ts, NULL);
        if (n < 0 && errno != EINTR) die(3, "epoll_pwait2");
        for (int i = 0; i < n; i++) {
            struct conn *c = &g.conns[events[i].data.u32];
            if (c->connected) {
                readable(c);
            } else if (connected(c, events[i].events)) {
                make_idle(c); /* a reopened connection is up */
            } else {
                broken(c); /* and try again */
            }
        }
    }
    double cpu_wait_ms = (double)(run_delay_ns() - waited) / 1e6;
    double cpu = cpu_seconds() - used;
    uint64_t sent = 0;
    for (int k = 0; k < g.ntargets; k++) sent += g.targets[k].sent;
    double load[1] = {0};
    getloadavg(load, 1);
    /* Windows: each target is sent to in 1/n of them, at the full rate. */
    double share = interleave ? seconds : seconds / g.ntargets;
    printf("{\"rate\": %.3f, \"seconds\": %.3f, \"window_ms\": %.3f, \"quantum_us\": %.3f, "
           "\"arrivals\": \"%s\", \"targets\": [",
           rate, seconds, window_ms, quantum_us, poisson ? "poisson" : "uniform");
    for (int k = 0; k < g.ntargets; k++) {
        struct target *t = &g.targets[k];
        uint64_t unanswered = t->bl_len;
        for (int i = t->first; i < t->first + t->count; i++)
            unanswered += g.conns[i].busy && g.conns[i].due >= g.count_from;
        if (k) printf(", ");
        print_target(t, share, rate, unanswered, cpu_wait_ms, cpu / (double)(sent ? sent : 1) * 1e6, load[0]);
    }
    printf("]}\n");
    if (g.samples && fclose(g.samples) != 0) die(3, samples);
    return 0;
}
