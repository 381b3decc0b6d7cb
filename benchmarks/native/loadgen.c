/*
 * loadgen: the benchmarks' compiled load client, for the two phases where a Python client
 * saturates its core before the server does (connect+subscribe and signed API requests).
 *
 *   loadgen connect PORT KEY CHANNEL COUNT INFLIGHT TIMEOUT_S
 *       COUNT WebSockets to 127.0.0.1:PORT/app/KEY, at most INFLIGHT handshaking at once;
 *       each waits for pusher:connection_established, subscribes to CHANNEL and waits for
 *       pusher_internal:subscription_succeeded. Connections stay open until all are done.
 *   loadgen api PORT APP_ID KEY SECRET CONNS SECONDS
 *       CONNS keep-alive connections, one request each in flight, POST /apps/APP_ID/events
 *       to an empty channel, every request freshly signed (Pusher auth_version 1.0).
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

static int run_connect(int port, const char *key, const char *channel, int count,
                       int inflight, double timeout) {
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
            if (c->state == DONE || c->state == FAILED) continue;
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
            ssize_t got = recv(c->fd, c->buf + c->len, BUF - 1 - c->len, 0);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN) continue;
                FAIL(c, "closed by the server");
                continue;
            }
            c->len += got;
            c->buf[c->len] = 0;
            if (c->state == HANDSHAKE) {
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
                if (!memmem(c->buf, c->len, "subscription_succeeded", 22)) {
                    if (c->len > BUF / 2) c->len = 0; /* something else: keep looking */
                    continue;
                }
                c->state = DONE;
                c->len = 0;
                done++;
                active--;
                last = now_s();
                /* stays open, idle, until every connection is done */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            }
        }
    }
    double wall = last - started, cpu = cpu_s() - cpu0;
    int partial = done + failed < count;
    printf("{\"done\":%d,\"failed\":%d,\"wall\":%.4f,\"client_cpu\":%.4f,\"partial\":%s,"
           "\"per_second\":%.0f,\"first_failure\":\"%s\"}\n",
           done, failed, wall, cpu, partial ? "true" : "false", wall > 0 ? done / wall : 0.0,
           first_failure);
    fflush(stdout);
    for (int i = 0; i < launched; i++)
        if (conns[i].state != FAILED) close(conns[i].fd);
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

int main(int argc, char **argv) {
    raise_nofile();
    if (argc == 8 && strcmp(argv[1], "connect") == 0)
        return run_connect(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]), atoi(argv[6]),
                           atof(argv[7]));
    if (argc == 8 && strcmp(argv[1], "api") == 0)
        return run_api(atoi(argv[2]), argv[3], argv[4], argv[5], atoi(argv[6]), atof(argv[7]));
    fprintf(stderr,
            "usage: loadgen connect PORT KEY CHANNEL COUNT INFLIGHT TIMEOUT_S\n"
            "       loadgen api PORT APP_ID KEY SECRET CONNS SECONDS\n");
    return 2;
}
