/*
 * loadgen: the benchmarks' compiled load client, for the two phases where a Python client
 * saturates its core before the server does (connect+subscribe and signed API requests).
 *
 *   loadgen connect PORT KEY CHANNEL COUNT INFLIGHT TIMEOUT_S [HOLD_S]
 *       COUNT WebSockets to 127.0.0.1:PORT/app/KEY, at most INFLIGHT handshaking at once;
 *       each waits for pusher:connection_established, subscribes to CHANNEL and waits for
 *       pusher_internal:subscription_succeeded. Connections stay open until all are done.
 *       Frames after the subscribe are read whole and ignored, except that
 *       pusher_internal:subscription_count frames are counted ("subscription_counts").
 *       With HOLD_S, two phases each started by a line on stdin (as in bench): connect,
 *       then HOLD_S seconds with every connection open and idle, still read and counted
 *       (answered by a second JSON line); the connections are closed at the next line or EOF.
 *   loadgen api PORT APP_ID KEY SECRET CONNS SECONDS
 *       CONNS keep-alive connections, one request each in flight, POST /apps/APP_ID/events
 *       to an empty channel, every request freshly signed (Pusher auth_version 1.0).
 *   loadgen bench PORT APP_ID KEY SECRET COUNT EVENTS WINDOW SECONDS TIMEOUT_S
 *       Three phases on one server, each started by a line on stdin (so the caller can read
 *       the server's CPU around it) and answered by a JSON line: connect (COUNT connections
 *       subscribed to "bench", 200 handshaking at once, kept open), fanout (EVENTS events to
 *       "bench" through the signed API, 4 trigger connections, at most WINDOW events not yet
 *       delivered to every subscriber; deliveries counted over all COUNT connections), and
 *       api (as the api mode, 16 connections for SECONDS, the COUNT connections still open).
 *
 * Prints one JSON line: what was done, wall seconds and this process's own CPU seconds, so
 * the runner can show whether the client was near its core's limit. One thread, epoll,
 * non-blocking sockets; OpenSSL's libcrypto for MD5 and HMAC-SHA256. Written by hand because
 * the Python client spent ~55 us of CPU per connection and ~60 us per request, which made it
 * the limit against the reference server (benchmarks/README.md, "Why this client").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 4096
/* The frames run_connect counts: the server's subscription counts (an app option). */
#define COUNT_EVENT "{\"event\":\"pusher_internal:subscription_count\""

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int open_socket(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether all of data[0..len) is written (sockets on loopback: a short write is an error). */
static int send_all(int fd, const char *data, size_t len) {
    ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    return n == (ssize_t)len;
}

/* -- connect+subscribe ------------------------------------------------------------------- */

enum { CONNECTING, HANDSHAKE, SUBSCRIBING, DONE, FAILED };

typedef struct {
    int fd;
    int state;
    int len;
    char buf[BUF];
} wsconn;

static wsconn *connected_conns; /* the connections run_connect left open */
static long count_frames(wsconn *c, const char *data, int len, const char *prefix, int *succeeded);
static char readbuf[65536];

static int run_connect(int port, const char *key, const char *channel, int count,
                       int inflight, double timeout, int keep) {
    char request[512], subscribe[512], frame[600];
    int reqlen = snprintf(request, sizeof request,
                          "GET /app/%s?protocol=7&client=bench&version=1.0 HTTP/1.1\r\n"
                          "Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                          key, port);
    int sublen = snprintf(subscribe, sizeof subscribe,
                          "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", channel);
    if (sublen >= 126) return 2;
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame[0] = (char)0x81;
    frame[1] = (char)(0x80 | sublen);
    memcpy(frame + 2, mask, 4);
    for (int i = 0; i < sublen; i++) frame[6 + i] = subscribe[i] ^ mask[i % 4];
    int framelen = 6 + sublen;

    wsconn *conns = calloc(count, sizeof *conns);
    int ep = epoll_create1(0);
    struct epoll_event *events = calloc(1024, sizeof *events);
    int launched = 0, active = 0, done = 0, failed = 0;
    long counts = 0; /* pusher_internal:subscription_count frames received */
    char first_failure[200] = "";
    double started = now_s(), cpu0 = cpu_s(), last = started;
    double deadline = started + timeout;

#define FAIL(c, why)                                                              \
    do {                                                                          \
        if (!first_failure[0]) snprintf(first_failure, sizeof first_failure, "%s", why); \
        epoll_ctl(ep, EPOLL_CTL_DEL, (c)->fd, NULL);                              \
        close((c)->fd);                                                           \
        (c)->state = FAILED;                                                      \
        failed++;                                                                 \
        active--;                                                                 \
    } while (0)

    while (done + failed < count && now_s() < deadline) {
        while (active < inflight && launched < count) {
            wsconn *c = &conns[launched];
            c->fd = open_socket(port);
            c->state = CONNECTING;
            launched++;
            active++;
            if (c->fd < 0) {
                if (!first_failure[0]) snprintf(first_failure, sizeof first_failure, "socket: %s", strerror(errno));
                c->state = FAILED;
                failed++;
                active--;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        }
        int n = epoll_wait(ep, events, 1024, 100);
        for (int i = 0; i < n; i++) {
            wsconn *c = events[i].data.ptr;
            if (c->state == FAILED) continue;
            if (c->state == DONE) { /* subscribed: read what else comes, count the counts */
                ssize_t got = recv(c->fd, readbuf, sizeof readbuf, 0);
                if (got > 0) counts += count_frames(c, readbuf, (int)got, COUNT_EVENT, NULL);
                else if (got == 0 || errno != EAGAIN) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                FAIL(c, "connection refused or reset");
                continue;
            }
            if (c->state == CONNECTING && (events[i].events & EPOLLOUT)) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (!send_all(c->fd, request, reqlen)) {
                    FAIL(c, "handshake write");
                    continue;
                }
                c->state = HANDSHAKE;
            }
            if (!(events[i].events & EPOLLIN)) continue;
            ssize_t got = c->state == HANDSHAKE
                              ? recv(c->fd, c->buf + c->len, BUF - 1 - c->len, 0)
                              : recv(c->fd, readbuf, sizeof readbuf, 0);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) continue;
                FAIL(c, "closed by the server");
                continue;
            }
            if (c->state == HANDSHAKE) {
                c->len += got;
                c->buf[c->len] = 0;
                if (c->len >= 12 && strncmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                    FAIL(c, "handshake refused");
                    continue;
                }
                if (!memmem(c->buf, c->len, "connection_established", 22)) continue;
                if (!send_all(c->fd, frame, framelen)) {
                    FAIL(c, "subscribe write");
                    continue;
                }
                c->state = SUBSCRIBING;
                c->len = 0;
            } else if (c->state == SUBSCRIBING) {
                int succeeded = 0; /* whole frames: any other is read and ignored */
                counts += count_frames(c, readbuf, (int)got, COUNT_EVENT, &succeeded);
                if (!succeeded) continue;
                c->state = DONE; /* stays open (and read) until every connection is done */
                done++;
                active--;
                last = now_s();
            }
        }
    }
    double wall = last - started, cpu = cpu_s() - cpu0;
    int partial = done + failed < count;
    printf("{\"done\":%d,\"failed\":%d,\"wall\":%.4f,\"client_cpu\":%.4f,\"partial\":%s,"
           "\"per_second\":%.0f,\"subscription_counts\":%ld,\"first_failure\":\"%s\"}\n",
           done, failed, wall, cpu, partial ? "true" : "false", wall > 0 ? done / wall : 0.0,
           counts, first_failure);
    fflush(stdout);
    close(ep);
    free(events);
    if (keep) {
        connected_conns = conns;
        return done;
    }
    for (int i = 0; i < launched; i++)
        if (conns[i].state != FAILED) close(conns[i].fd);
    free(conns);
    return 0;
}

/* -- signed API requests ------------------------------------------------------------------ */

typedef struct {
    int fd;
    int len;
    char buf[BUF];
} httpconn;

static void hex(const unsigned char *in, unsigned n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

typedef struct {
    const char *app_id, *key, *secret, *body;
    int port;
    char body_md5[33];
} signer;

static int sign(signer *s, char *out, size_t cap) {
    char query[300], signed_text[400], sig[65];
    unsigned char mac[32];
    unsigned maclen = 0;
    int qlen = snprintf(query, sizeof query,
                        "auth_key=%s&auth_timestamp=%ld&auth_version=1.0&body_md5=%s", s->key,
                        (long)time(NULL), s->body_md5);
    int tlen = snprintf(signed_text, sizeof signed_text, "POST\n/apps/%s/events\n%s", s->app_id,
                        query);
    HMAC(EVP_sha256(), s->secret, (int)strlen(s->secret), (unsigned char *)signed_text, tlen,
         mac, &maclen);
    hex(mac, maclen, sig);
    (void)qlen;
    return snprintf(out, cap,
                    "POST /apps/%s/events?%s&auth_signature=%s HTTP/1.1\r\n"
                    "Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    s->app_id, query, sig, s->port, strlen(s->body), s->body);
}

/* Length of the complete response at the start of buf (0: not complete yet), its status. */
static int response_length(const char *buf, int len, int *status) {
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) return 0;
    int head = (int)(end - buf) + 4;
    *status = len >= 12 ? atoi(buf + 9) : 0;
    const char *cl = memmem(buf, head, "Content-Length:", 15);
    if (!cl) cl = memmem(buf, head, "content-length:", 15);
    int body = cl ? atoi(cl + 15) : 0;
    return len >= head + body ? head + body : 0;
}

static int run_api(int port, const char *app_id, const char *key, const char *secret, int nconns,
                   double seconds) {
    signer s = {.app_id = app_id, .key = key, .secret = secret, .port = port,
                .body = "{\"name\":\"e\",\"channel\":\"empty\",\"data\":\"x\"}"};
    unsigned char digest[16];
    unsigned dlen = 0;
    EVP_Digest(s.body, strlen(s.body), digest, &dlen, EVP_md5(), NULL);
    hex(digest, dlen, s.body_md5);
    httpconn *conns = calloc(nconns, sizeof *conns);
    int ep = epoll_create1(0);
    struct epoll_event events[64];
    char request[1024];
    long ok = 0, bad = 0;
    int active = 0;
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = open_socket(port);
        if (conns[i].fd < 0) continue;
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        active++;
    }
    double started = now_s(), cpu0 = cpu_s(), stop_at = started + seconds, last = started;
    while (active > 0 && now_s() < stop_at + 30) {
        int n = epoll_wait(ep, events, 64, 100);
        for (int i = 0; i < n; i++) {
            httpconn *c = events[i].data.ptr;
            int send_next = 0;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                bad++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                active--;
                continue;
            }
            if (events[i].events & EPOLLOUT) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                send_next = 1;
            } else {
                ssize_t got = recv(c->fd, c->buf + c->len, BUF - c->len, 0);
                if (got <= 0) {
                    if (got < 0 && errno == EAGAIN) continue;
                    bad++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    active--;
                    continue;
                }
                c->len += got;
                int status = 0, used = response_length(c->buf, c->len, &status);
                if (!used) {
                    if (c->len == BUF) c->len = 0; /* oversized: not a response we sent for */
                    continue;
                }
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
                if (status == 200) ok++; else bad++;
                last = now_s();
                send_next = last < stop_at;
                if (!send_next) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    active--;
                }
            }
            if (send_next) {
                int len = sign(&s, request, sizeof request);
                if (!send_all(c->fd, request, len)) {
                    bad++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    active--;
                }
            }
        }
    }
    double wall = last - started, cpu = cpu_s() - cpu0;
    printf("{\"requests\":%ld,\"errors\":%ld,\"wall\":%.4f,\"client_cpu\":%.4f,"
           "\"partial\":%s,\"per_second\":%.0f}\n",
           ok, bad, wall, cpu, active > 0 ? "true" : "false", wall > 0 ? ok / wall : 0.0);
    return 0;
}

/* -- fan-out ------------------------------------------------------------------------------ */

/* Events in the complete frames of data[0..len): text frames that start with prefix (fan-out:
 * {"event":"e", the benchmark's own, not pusher:* ones). Sets *succeeded (when given) if one
 * of them was a subscription_succeeded. Returns the bytes of an incomplete last frame, which
 * stay at the end of data. */
static long parse_frames(const char *data, int len, const char *prefix, int *succeeded,
                         int *rest) {
    long events = 0;
    int pos = 0, plen = (int)strlen(prefix);
    while (len - pos >= 2) {
        const unsigned char *p = (const unsigned char *)data + pos;
        long size = p[1] & 0x7F;
        int head = 2;
        if (size == 126) {
            if (len - pos < 4) break;
            size = (p[2] << 8) | p[3];
            head = 4;
        } else if (size == 127) {
            if (len - pos < 10) break;
            size = 0;
            for (int i = 2; i < 10; i++) size = (size << 8) | p[i];
            head = 10;
        }
        if (len - pos < head + size) break;
        if ((p[0] & 0x0F) == 1 && size >= plen && memcmp(p + head, prefix, plen) == 0)
            events++;
        else if (succeeded && memmem(p + head, size, "subscription_succeeded", 22))
            *succeeded = 1;
        pos += head + (int)size;
    }
    *rest = len - pos;
    return events;
}

/* Count the events a read brought to c, joined to the partial frame c kept from before. */
static long count_frames(wsconn *c, const char *data, int len, const char *prefix, int *succeeded) {
    static char joined[BUF + 65536];
    const char *from = data;
    if (c->len > 0) {
        memcpy(joined, c->buf, c->len);
        memcpy(joined + c->len, data, len);
        len += c->len;
        from = joined;
    }
    int rest = 0;
    long events = parse_frames(from, len, prefix, succeeded, &rest);
    if (rest > BUF) rest = 0; /* a frame larger than the buffer: not one of ours */
    memmove(c->buf, from + len - rest, rest);
    c->len = rest;
    return events;
}

static void md5_hex(const char *body, size_t len, char out[33]) {
    unsigned char digest[16];
    unsigned dlen = 0;
    EVP_Digest(body, len, digest, &dlen, EVP_md5(), NULL);
    hex(digest, dlen, out);
}

static int run_fanout(signer *s, int nconns, long events, long window, double timeout) {
    int ep = epoll_create1(0);
    int subscribed = 0;
    for (int i = 0; i < nconns; i++) {
        wsconn *c = &connected_conns[i];
        if (c->state != DONE) continue; /* c->buf: a frame begun in the connect phase */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        subscribed++;
    }
    enum { TRIGGERS = 4 };
    httpconn triggers[TRIGGERS];
    int idle[TRIGGERS], nidle = 0;
    for (int i = 0; i < TRIGGERS; i++) {
        triggers[i].fd = open_socket(s->port);
        triggers[i].len = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &triggers[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, triggers[i].fd, &ev);
        idle[nidle++] = i;
    }
    char request[2048], body[256];
    struct epoll_event evs[256];
    long sent = 0, bad = 0, delivered = 0;
    double started = now_s(), cpu0 = cpu_s(), last = started, deadline = started + timeout;
    usleep(20000); /* let the trigger connections be accepted */
    started = now_s();
    while (now_s() < deadline) {
        while (nidle > 0 && sent < events && delivered >= (sent - bad - window) * subscribed) {
            int i = idle[--nidle];
            int blen = snprintf(body, sizeof body,
                                "{\"name\":\"e\",\"channel\":\"bench\",\"data\":\"%08ld"
                                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                                sent);
            md5_hex(body, blen, s->body_md5);
            s->body = body;
            int len = sign(s, request, sizeof request);
            if (!send_all(triggers[i].fd, request, len)) bad++;
            sent++;
        }
        if (sent >= events && delivered >= (events - bad) * subscribed) break;
        int n = epoll_wait(ep, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            void *ptr = evs[k].data.ptr;
            if (ptr >= (void *)triggers && ptr < (void *)(triggers + TRIGGERS)) {
                httpconn *t = ptr;
                ssize_t got = recv(t->fd, t->buf + t->len, BUF - t->len, 0);
                if (got <= 0) continue;
                t->len += got;
                int status = 0, used;
                while ((used = response_length(t->buf, t->len, &status)) > 0) {
                    memmove(t->buf, t->buf + used, t->len - used);
                    t->len -= used;
                    if (status != 200) bad++;
                    idle[nidle++] = (int)(t - triggers);
                }
                continue;
            }
            wsconn *c = ptr;
            for (;;) {
                ssize_t got = recv(c->fd, readbuf, sizeof readbuf, 0);
                if (got <= 0) break;
                long counted = count_frames(c, readbuf, (int)got, "{\"event\":\"e\"", NULL);
                if (counted) {
                    delivered += counted;
                    last = now_s();
                }
                if (got < (ssize_t)sizeof readbuf) break;
            }
        }
    }
    double wall = last - started, cpu = cpu_s() - cpu0;
    int partial = delivered < (events - bad) * subscribed;
    printf("{\"deliveries\":%ld,\"events\":%ld,\"errors\":%ld,\"subscribers\":%d,"
           "\"wall\":%.4f,\"client_cpu\":%.4f,\"partial\":%s,\"per_second\":%.0f}\n",
           delivered, sent, bad, subscribed, wall, cpu, partial ? "true" : "false",
           wall > 0 ? delivered / wall : 0.0);
    fflush(stdout);
    for (int i = 0; i < TRIGGERS; i++) close(triggers[i].fd);
    for (int i = 0; i < nconns; i++)
        if (connected_conns[i].state == DONE) epoll_ctl(ep, EPOLL_CTL_DEL, connected_conns[i].fd, NULL);
    close(ep);
    return 0;
}

/* -- idle hold ----------------------------------------------------------------------------- */

/* Keep the connections run_connect left open for seconds, reading every one (what arrives is
 * counted as in run_connect); then one JSON line: still open, closed by the server, counts. */
static int run_hold(int nconns, double seconds) {
    int ep = epoll_create1(0), held = 0, dropped = 0;
    long counts = 0;
    for (int i = 0; i < nconns; i++) {
        wsconn *c = &connected_conns[i];
        if (c->state != DONE) continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        held++;
    }
    struct epoll_event evs[256];
    double started = now_s(), cpu0 = cpu_s(), stop_at = started + seconds;
    for (double left = seconds; left > 0; left = stop_at - now_s()) {
        int n = epoll_wait(ep, evs, 256, (int)(left * 1000) + 1);
        for (int k = 0; k < n; k++) {
            wsconn *c = evs[k].data.ptr;
            ssize_t got = recv(c->fd, readbuf, sizeof readbuf, 0);
            if (got > 0) {
                counts += count_frames(c, readbuf, (int)got, COUNT_EVENT, NULL);
            } else if (got == 0 || errno != EAGAIN) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                held--;
                dropped++;
            }
        }
    }
    printf("{\"held\":%d,\"dropped\":%d,\"subscription_counts\":%ld,\"wall\":%.4f,"
           "\"client_cpu\":%.4f}\n",
           held, dropped, counts, now_s() - started, cpu_s() - cpu0);
    fflush(stdout);
    close(ep);
    return 0;
}

static int wait_for_go(void) {
    char line[16];
    return fgets(line, sizeof line, stdin) != NULL;
}

int main(int argc, char **argv) {
    raise_nofile();
    if (argc == 8 && strcmp(argv[1], "connect") == 0)
        return run_connect(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]), atoi(argv[6]),
                           atof(argv[7]), 0);
    if (argc == 9 && strcmp(argv[1], "connect") == 0) { /* with HOLD_S */
        if (!wait_for_go()) return 2;
        run_connect(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]), atoi(argv[6]),
                    atof(argv[7]), 1);
        if (!wait_for_go()) return 2;
        run_hold(atoi(argv[5]), atof(argv[8]));
        wait_for_go(); /* a line or EOF: the connections close as the process exits */
        return 0;
    }
    if (argc == 11 && strcmp(argv[1], "bench") == 0) {
        int port = atoi(argv[2]), count = atoi(argv[6]);
        double seconds = atof(argv[9]), timeout = atof(argv[10]);
        signer s = {.app_id = argv[3], .key = argv[4], .secret = argv[5], .port = port};
        if (!wait_for_go()) return 2;
        run_connect(port, argv[4], "bench", count, 200, timeout, 1);
        if (!wait_for_go()) return 2;
        run_fanout(&s, count, atol(argv[7]), atol(argv[8]), timeout);
        if (!wait_for_go()) return 2;
        return run_api(port, argv[3], argv[4], argv[5], 16, seconds);
    }
    if (argc == 8 && strcmp(argv[1], "api") == 0)
        return run_api(atoi(argv[2]), argv[3], argv[4], argv[5], atoi(argv[6]), atof(argv[7]));
    fprintf(stderr,
            "usage: loadgen connect PORT KEY CHANNEL COUNT INFLIGHT TIMEOUT_S [HOLD_S]\n"
            "       loadgen api PORT APP_ID KEY SECRET CONNS SECONDS\n"
            "       loadgen bench PORT APP_ID KEY SECRET COUNT EVENTS WINDOW SECONDS TIMEOUT_S\n");
    return 2;
}
