/*
 * loadgen: the closed-loop load generator of tcpy's benchmark suite.
 *
 * Why C: on a 2-core machine a JavaScript load generator would take a
 * whole core from the server it measures. One epoll thread with
 * non-blocking sockets costs a small fraction of that, so the figures
 * describe the server, not the client.
 *
 * Load mode (default): opens CONNS connections to HOST:PORT and keeps DEPTH
 * requests in flight on each (closed loop: every reply sends the next
 * request). Replies that arrive during the warm-up are not counted. What a
 * request and a reply are depends on the protocol (-k):
 *   jsonrpc         a JSON-RPC request per line; a reply is a line (tcpy,
 *                   the baseline, most line-based servers);
 *   jsonrpc-stream  the same requests; a reply is a complete top-level JSON
 *                   value, with or without anything between values (jayson's
 *                   TCP server writes its replies back to back, no newline);
 *   redis           the inline command "PING\r\n"; a reply is a line
 *                   ("+PONG\r\n"), and EXPECT defaults to "+PONG".
 * Prints one JSON object:
 *   {"replies":N,"seconds":S,"rps":R,"p50_us":..,"p99_us":..,"max_us":..,
 *    "errors":E,"bad":B,"cpu_s":C}
 * where "errors" counts failed or closed connections and "bad" counts
 * first replies (one per connection) that lack the EXPECT substring, and
 * "cpu_s" is this process's own CPU time (user + system, warm-up included):
 * near 100% of the run's wall time means the client, not the server, set
 * the pace.
 * Replies are counted, not matched to requests: a server that answers out
 * of order is timed as if it answered in order.
 *
 * Idle mode (-i): opens CONNS connections, BATCH at a time; each sends one
 * request and waits for its reply (so the server has surely accepted and
 * read it), then stays open and silent. Prints "ready N" once all are open,
 * then holds them until stdin reaches end of file (or HOLD_MS passes), and
 * exits.
 *
 * Traffic goes to the given IPv4 address only; the suite passes 127.0.0.1.
 *
 * Build: cc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 1000000 /* 1 µs buckets up to 1 s; slower replies go in the last one */
#define READ_BYTES 65536
#define FIRST_LINE 512

typedef struct {
  int fd;
  int connected;
  int closed;
  int checked;       /* first reply checked against EXPECT */
  int first_len;
  char first[FIRST_LINE];
  int json_depth;    /* jsonrpc-stream: nesting depth of the reply being read */
  int json_string;   /* ...inside a string */
  int json_escape;   /* ...right after a backslash in a string */
  uint64_t *sent;    /* ring of send times (ns), DEPTH entries */
  int head, count;   /* oldest outstanding request, number outstanding */
  char *out;         /* bytes not yet written */
  size_t out_len, out_off, out_cap;
} conn_t;

static const char *opt_host = "127.0.0.1";
static int opt_port = 0, opt_conns = 1, opt_depth = 1, opt_idle = 0, opt_batch = 200;
static long opt_warmup_ms = 300, opt_duration_ms = 3000, opt_hold_ms = 120000;
static const char *opt_method = "add";
static const char *opt_params = "{\"x\":1,\"y\":2}";
static const char *opt_expect = NULL; /* default depends on the protocol */

enum { KIND_JSONRPC, KIND_JSONRPC_STREAM, KIND_REDIS };
static int opt_kind = KIND_JSONRPC;

static uint32_t *hist;
static uint64_t next_id = 1;
static int epfd;
static struct sockaddr_in addr;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void append_request(conn_t *c) {
  size_t need = c->out_len + 256 + strlen(opt_method) + strlen(opt_params);
  if (need > c->out_cap) {
    c->out_cap = need * 2;
    c->out = realloc(c->out, c->out_cap);
    if (!c->out) die("realloc");
  }
  int n = opt_kind == KIND_REDIS
              ? sprintf(c->out + c->out_len, "PING\r\n")
              : sprintf(c->out + c->out_len,
                        "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"%s\",\"params\":%s}\n",
                        (unsigned long long)next_id++, opt_method, opt_params);
  c->out_len += (size_t)n;
}

static void set_events(conn_t *c) {
  struct epoll_event ev = {0};
  ev.events = EPOLLIN | ((!c->connected || c->out_off < c->out_len) ? EPOLLOUT : 0);
  ev.data.ptr = c;
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is queued; returns -1 if the connection failed. */
static int flush_out(conn_t *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return -1;
    }
    c->out_off += (size_t)n;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
  return 0;
}

static void send_requests(conn_t *c, int k, uint64_t t) {
  for (int i = 0; i < k; i++) {
    append_request(c);
    c->sent[(c->head + c->count) % opt_depth] = t;
    c->count++;
  }
}

static int open_conn(conn_t *c) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    return -1;
  }
  c->sent = calloc((size_t)opt_depth, sizeof(uint64_t));
  struct epoll_event ev = {0};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = c;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
  return 0;
}

static void close_conn(conn_t *c, long *errors) {
  if (c->closed) return;
  c->closed = 1;
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (errors) (*errors)++;
}

static void finish_first(conn_t *c, long *bad) {
  c->first[c->first_len] = 0;
  if (!strstr(c->first, opt_expect)) {
    (*bad)++;
    if (*bad == 1) fprintf(stderr, "loadgen: unexpected reply: %s\n", c->first);
  }
  c->checked = 1;
}

static void check_first(conn_t *c, const char *data, size_t len, long *bad) {
  for (size_t i = 0; i < len && !c->checked; i++) {
    if (data[i] == '\n') {
      finish_first(c, bad);
    } else if (c->first_len < FIRST_LINE - 1) {
      c->first[c->first_len++] = data[i];
    }
  }
}

/* Counts the top-level JSON values that end in data; the state carries over reads. */
static long count_json_values(conn_t *c, const char *data, size_t len, long *bad) {
  long values = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = data[i];
    if (!c->checked && c->first_len < FIRST_LINE - 1) c->first[c->first_len++] = ch;
    if (c->json_string) {
      if (c->json_escape) {
        c->json_escape = 0;
      } else if (ch == '\\') {
        c->json_escape = 1;
      } else if (ch == '"') {
        c->json_string = 0;
      }
    } else if (ch == '"') {
      c->json_string = 1;
    } else if (ch == '{' || ch == '[') {
      c->json_depth++;
    } else if ((ch == '}' || ch == ']') && c->json_depth > 0 && --c->json_depth == 0) {
      values++;
      if (!c->checked) finish_first(c, bad);
    }
  }
  return values;
}

/* Reads what is there; returns the number of complete replies, or -1 on EOF/error. */
static long read_replies(conn_t *c, char *buf, long *bad, int *eof) {
  long lines = 0;
  *eof = 0;
  for (;;) {
    ssize_t n = read(c->fd, buf, READ_BYTES);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      *eof = 1;
      break;
    }
    if (n == 0) {
      *eof = 1;
      break;
    }
    if (opt_kind == KIND_JSONRPC_STREAM) {
      lines += count_json_values(c, buf, (size_t)n, bad);
    } else {
      if (!c->checked) check_first(c, buf, (size_t)n, bad);
      for (char *p = buf, *end = buf + n; (p = memchr(p, '\n', (size_t)(end - p))); p++) lines++;
    }
    if (n < READ_BYTES) break;
  }
  return lines;
}

static int cmp_done(conn_t *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) return -1;
  c->connected = 1;
  return 0;
}

static uint64_t percentile(uint64_t total, double q) {
  if (total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)total);
  if (rank >= total) rank = total - 1;
  uint64_t seen = 0;
  for (uint64_t us = 0; us < HIST_US; us++) {
    seen += hist[us];
    if (seen > rank) return us;
  }
  return HIST_US;
}

static int run_load(void) {
  conn_t *conns = calloc((size_t)opt_conns, sizeof(conn_t));
  char *buf = malloc(READ_BYTES);
  hist = calloc(HIST_US + 1, sizeof(uint32_t));
  if (!conns || !buf || !hist) die("calloc");
  long errors = 0, bad = 0;
  for (int i = 0; i < opt_conns; i++) {
    if (open_conn(&conns[i]) < 0) die("connect");
  }
  struct epoll_event events[256];
  uint64_t start = now_ns();
  uint64_t measure_from = start + (uint64_t)opt_warmup_ms * 1000000ull;
  uint64_t stop_at = measure_from + (uint64_t)opt_duration_ms * 1000000ull;
  uint64_t replies = 0, max_us = 0;
  int open = opt_conns;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= stop_at || open == 0) break;
    int n = epoll_wait(epfd, events, 256, 5);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    t = now_ns();
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      if (c->closed) continue;
      if (!c->connected) {
        if (!(events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        if (cmp_done(c) < 0) {
          close_conn(c, &errors);
          open--;
          continue;
        }
        send_requests(c, opt_depth, t);
        if (flush_out(c) < 0) {
          close_conn(c, &errors);
          open--;
          continue;
        }
        set_events(c);
        continue;
      }
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int eof;
        long k = read_replies(c, buf, &bad, &eof);
        if (k > c->count) k = c->count; /* more lines than requests: server bug */
        for (long j = 0; j < k; j++) {
          uint64_t sent = c->sent[c->head];
          c->head = (c->head + 1) % opt_depth;
          c->count--;
          if (t >= measure_from && t < stop_at) {
            uint64_t us = (t - sent) / 1000;
            if (us > max_us) max_us = us;
            hist[us < HIST_US ? us : HIST_US]++;
            replies++;
          }
        }
        if (eof) {
          close_conn(c, &errors);
          open--;
          continue;
        }
        if (k > 0) send_requests(c, (int)k, t);
      }
      int had_out = c->out_off < c->out_len;
      if (flush_out(c) < 0) {
        close_conn(c, &errors);
        open--;
        continue;
      }
      if (had_out || c->out_off < c->out_len) set_events(c);
    }
  }
  double seconds = (double)opt_duration_ms / 1000.0;
  uint64_t t_end = now_ns();
  if (t_end < stop_at) { /* every connection died */
    seconds = t_end > measure_from ? (double)(t_end - measure_from) / 1e9 : 0;
  }
  if (seconds <= 0) seconds = 1e-9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  printf("{\"replies\":%llu,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%llu,\"p99_us\":%llu,"
         "\"max_us\":%llu,\"errors\":%ld,\"bad\":%ld,\"cpu_s\":%.3f}\n",
         (unsigned long long)replies, seconds, (double)replies / seconds,
         (unsigned long long)percentile(replies, 0.50), (unsigned long long)percentile(replies, 0.99),
         (unsigned long long)max_us, errors, bad, cpu_s);
  fflush(stdout);
  for (int i = 0; i < opt_conns; i++) close_conn(&conns[i], NULL);
  return errors > 0 || bad > 0 ? 1 : 0;
}

/* Opens conns [from, to), one request each, and waits for every reply. */
static int open_batch(conn_t *conns, int from, int to, char *buf, long *bad, uint64_t deadline) {
  int waiting = 0;
  for (int i = from; i < to; i++) {
    if (open_conn(&conns[i]) < 0) {
      perror("loadgen: connect");
      return -1;
    }
    waiting++;
  }
  struct epoll_event events[256];
  while (waiting > 0) {
    if (now_ns() > deadline) {
      fprintf(stderr, "loadgen: timed out opening idle connections\n");
      return -1;
    }
    int n = epoll_wait(epfd, events, 256, 50);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = events[i].data.ptr;
      if (!c->connected) {
        if (cmp_done(c) < 0) {
          fprintf(stderr, "loadgen: connect failed\n");
          return -1;
        }
        send_requests(c, 1, now_ns());
        if (flush_out(c) < 0) return -1;
        set_events(c);
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        if (flush_out(c) < 0) return -1;
        set_events(c);
      }
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        int eof;
        long k = read_replies(c, buf, bad, &eof);
        if (eof) {
          fprintf(stderr, "loadgen: server closed an idle connection\n");
          return -1;
        }
        if (k > 0 && c->count > 0) {
          c->count = 0;
          waiting--;
          /* Idle from now on: no more events wanted but errors. */
          struct epoll_event ev = {0};
          ev.data.ptr = c;
          epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
    }
  }
  return 0;
}

static int run_idle(void) {
  conn_t *conns = calloc((size_t)opt_conns, sizeof(conn_t));
  char *buf = malloc(READ_BYTES);
  if (!conns || !buf) die("calloc");
  opt_depth = 1;
  long bad = 0;
  uint64_t deadline = now_ns() + (uint64_t)opt_hold_ms * 1000000ull;
  for (int from = 0; from < opt_conns; from += opt_batch) {
    int to = from + opt_batch < opt_conns ? from + opt_batch : opt_conns;
    if (open_batch(conns, from, to, buf, &bad, deadline) < 0) return 1;
  }
  printf("ready %d bad %ld\n", opt_conns, bad);
  fflush(stdout);
  /* Hold until the runner closes our stdin, or the deadline. */
  struct pollfd pfd = {.fd = 0, .events = POLLIN};
  for (;;) {
    long left = (long)((deadline - now_ns()) / 1000000ull);
    if ((int64_t)(deadline - now_ns()) <= 0) break;
    int r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
    if (r > 0) {
      ssize_t n = read(0, buf, READ_BYTES);
      if (n <= 0) break;
    }
  }
  for (int i = 0; i < opt_conns; i++) close_conn(&conns[i], NULL);
  return bad > 0 ? 1 : 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen -p PORT [-h IPV4] [-c CONNS] [-d DEPTH] [-w WARMUP_MS] [-t DURATION_MS]\n"
          "               [-k jsonrpc|jsonrpc-stream|redis] [-m METHOD] [-P PARAMS_JSON] [-e EXPECT]\n"
          "               [-i [-b BATCH] [-H HOLD_MS]]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "h:p:c:d:w:t:k:m:P:e:ib:H:")) != -1) {
    switch (opt) {
      case 'h': opt_host = optarg; break;
      case 'p': opt_port = atoi(optarg); break;
      case 'c': opt_conns = atoi(optarg); break;
      case 'd': opt_depth = atoi(optarg); break;
      case 'w': opt_warmup_ms = atol(optarg); break;
      case 't': opt_duration_ms = atol(optarg); break;
      case 'm': opt_method = optarg; break;
      case 'P': opt_params = optarg; break;
      case 'e': opt_expect = optarg; break;
      case 'k':
        if (strcmp(optarg, "jsonrpc") == 0) opt_kind = KIND_JSONRPC;
        else if (strcmp(optarg, "jsonrpc-stream") == 0) opt_kind = KIND_JSONRPC_STREAM;
        else if (strcmp(optarg, "redis") == 0) opt_kind = KIND_REDIS;
        else usage();
        break;
      case 'i': opt_idle = 1; break;
      case 'b': opt_batch = atoi(optarg); break;
      case 'H': opt_hold_ms = atol(optarg); break;
      default: usage();
    }
  }
  if (opt_port <= 0 || opt_port > 65535 || opt_conns < 1 || opt_depth < 1 || opt_batch < 1 ||
      opt_duration_ms < 1 || opt_warmup_ms < 0 || opt_conns > 100000 || opt_depth > 4096) {
    usage();
  }
  if (!opt_expect) opt_expect = opt_kind == KIND_REDIS ? "+PONG" : "\"solution\":3";
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opt_port);
  if (inet_pton(AF_INET, opt_host, &addr.sin_addr) != 1) usage();
  raise_fd_limit();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  return opt_idle ? run_idle() : run_load();
}
