/* Load generator and stopwatch for greeterd's benchmark (see bench.py).
 *
 *   loadgen rate PATH THREADS SECONDS   closed-loop greetings: connect, send "Zoë\n", read the
 *                                        reply, check it, close; one blocking client per thread.
 *                                        Prints: count errors p50_us p99_us
 *   loadgen refuse PATH THREADS SECONDS the same with a name the server must refuse (an escape
 *                                        sequence), checking the refusal line: a flood
 *   loadgen varlink PATH THREADS SECONDS CALLS
 *                                        closed-loop Varlink calls: io.greeterd.Greeter.Greet
 *                                        {"name":"Zoë"}, reply checked, CALLS calls on each
 *                                        connection before the next one. Prints as rate does
 *   loadgen once PATH                    one greeting, timed from connect() to the reply; retries
 *                                        connect until something listens on PATH. Prints: micros
 *   loadgen exec PROGRAM ARG...          fork+exec+wait PROGRAM, timed. Prints: micros
 *   loadgen hold PATH N SECONDS          open N connections, send nothing, hold them SECONDS,
 *                                        then print how many the server closed meanwhile.
 *   loadgen share PATH THREADS SECONDS  closed-loop clients that send nothing and expect greeterd
 *                                        to turn them away at once ("too many clients of this
 *                                        user waiting": a `hold` of the same user holds its
 *                                        share). Prints as rate does
 *
 * With LOADGEN_UID set (and run as root), every mode first becomes that user, as an
 * unprivileged user floods: greeterd exempts root from its per-user share.
 *
 * Written in C so that the client is not what limits the rate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

static const char GREETED[] = "Zo\xc3\xab\n";
static const char HELLO[] = "Hello, Zo\xc3\xab\n";
static const char REFUSED[] = "\x1b[31mbad\n";
static const char REFUSAL[] = "error: control character in name\n";
static const char TOO_MANY[] = "error: too many clients of this user waiting\n";
/* What every exchange sends and expects: a greeting, or with `refuse` a refusal. */
static const char *request = GREETED, *reply = HELLO;
#define MAX_SAMPLES 2000000

static struct sockaddr_un address;
static atomic_int stop;
static atomic_long errors;
static uint32_t *samples;
static atomic_long n_samples;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_path(const char *path) {
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address.sun_path) {
        fprintf(stderr, "path too long: %s\n", path);
        exit(2);
    }
    strcpy(address.sun_path, path);
}

/* What went wrong in the last failed greeting, for `once` to print (thread-local: every
 * client thread has its own). */
static __thread char failure[160];

static int fail(int fd, const char *step) {
    snprintf(failure, sizeof failure, "%s: %s", step, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

/* A connected socket, or -1. Until `give_up` (0: no retry), a path that does not exist yet or
 * that nobody listens on yet is tried again every millisecond: an activator creates the file
 * at bind(), a moment before listen(), and a connect() in between is refused. `*started` is
 * the time of the connect() that succeeded. */
static int open_connection(uint64_t give_up, uint64_t *started) {
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return fail(-1, "socket");
        *started = now_ns();
        if (connect(fd, (struct sockaddr *)&address, sizeof address) == 0) return fd;
        int not_yet = errno == ENOENT || errno == ECONNREFUSED;
        if (!not_yet || now_ns() > give_up) return fail(fd, "connect");
        close(fd);
        usleep(1000);
    }
}

/* One exchange on a connected socket, which it closes; 0 when the reply was exactly `reply`.
 * An empty request sends nothing: the reply must come unasked. */
static int greet_on(int fd) {
    size_t request_len = strlen(request), reply_len = strlen(reply);
    if (request_len && write(fd, request, request_len) != (ssize_t)request_len) return fail(fd, "write");
    char buffer[256];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + got, sizeof buffer - got);
        if (n < 0) return fail(fd, "read");
        if (n == 0) break;
        got += (size_t)n;
        if (got == sizeof buffer) break;
    }
    close(fd);
    if (got == reply_len && memcmp(buffer, reply, got) == 0) return 0;
    snprintf(failure, sizeof failure, "bad reply: %zu bytes \"%.*s\"", got, (int)(got < 100 ? got : 100), buffer);
    return -1;
}

static const char VARLINK_CALL[] =
    "{\"method\":\"io.greeterd.Greeter.Greet\",\"parameters\":{\"name\":\"Zo\xc3\xab\"}}";
static const char VARLINK_REPLY[] = "{\"parameters\":{\"greeting\":\"Hello, Zo\xc3\xab\"}}";
static int calls_per_connection;

/* One Varlink call on a connected socket: 0 when the reply was exactly VARLINK_REPLY. */
static int varlink_call(int fd) {
    if (write(fd, VARLINK_CALL, sizeof VARLINK_CALL) != (ssize_t)sizeof VARLINK_CALL) return fail(-1, "write");
    char buffer[256];
    size_t got = 0;
    while (got == 0 || buffer[got - 1] != '\0') {
        ssize_t n = read(fd, buffer + got, sizeof buffer - got);
        if (n <= 0) return fail(-1, "read");
        got += (size_t)n;
        if (got == sizeof buffer) break;
    }
    if (got == sizeof VARLINK_REPLY && memcmp(buffer, VARLINK_REPLY, got) == 0) return 0;
    snprintf(failure, sizeof failure, "bad reply: %zu bytes \"%.*s\"", got, (int)(got < 100 ? got : 100), buffer);
    return -1;
}

/* Varlink clients: each connection carries calls_per_connection calls, each timed. */
static void *varlink_client(void *unused) {
    (void)unused;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t started;
        int fd = open_connection(0, &started);
        if (fd < 0) { atomic_fetch_add(&errors, 1); continue; }
        for (int i = 0; i < calls_per_connection && !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
            uint64_t start = i ? now_ns() : started;
            if (varlink_call(fd) != 0) { atomic_fetch_add(&errors, 1); break; }
            long n = atomic_fetch_add(&n_samples, 1);
            if (n < MAX_SAMPLES) samples[n] = (uint32_t)((now_ns() - start) / 1000);
        }
        close(fd);
    }
    return NULL;
}

static int greet(void) {
    uint64_t started;
    int fd = open_connection(0, &started);
    return fd < 0 ? -1 : greet_on(fd);
}

static void *client(void *unused) {
    (void)unused;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t start = now_ns();
        if (greet() != 0) { atomic_fetch_add(&errors, 1); continue; }
        long i = atomic_fetch_add(&n_samples, 1);
        if (i < MAX_SAMPLES) samples[i] = (uint32_t)((now_ns() - start) / 1000);
    }
    return NULL;
}

static int compare(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int rate(const char *path, int threads, double seconds, void *(*each)(void *)) {
    set_path(path);
    samples = malloc(sizeof *samples * MAX_SAMPLES);
    pthread_t ids[threads];
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, each, NULL);
    struct timespec pause = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    long count = atomic_load(&n_samples);
    long kept = count < MAX_SAMPLES ? count : MAX_SAMPLES;
    qsort(samples, (size_t)kept, sizeof *samples, compare);
    uint32_t p50 = kept ? samples[kept / 2] : 0, p99 = kept ? samples[kept * 99 / 100] : 0;
    printf("%ld %ld %u %u\n", count, atomic_load(&errors), p50, p99);
    return 0;
}

static int once(const char *path) {
    set_path(path);
    uint64_t start;
    int fd = open_connection(now_ns() + 10ull * 1000000000u, &start);
    if (fd < 0 || greet_on(fd) != 0) { fprintf(stderr, "%s\n", failure); return 1; }
    printf("%llu\n", (unsigned long long)((now_ns() - start) / 1000));
    return 0;
}

static int exec_timed(char **argv) {
    uint64_t start = now_ns();
    pid_t pid = fork();
    if (pid == 0) { execvp(argv[0], argv); _exit(127); }
    int status;
    waitpid(pid, &status, 0);
    printf("%llu\n", (unsigned long long)((now_ns() - start) / 1000));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int hold(const char *path, int n, double seconds) {
    set_path(path);
    struct pollfd *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        fds[i].events = POLLIN;
        if (fds[i].fd < 0 || connect(fds[i].fd, (struct sockaddr *)&address, sizeof address) < 0) {
            fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    printf("held %d\n", n);
    fflush(stdout);
    usleep((useconds_t)(seconds * 1e6));
    poll(fds, (nfds_t)n, 0);
    int closed = 0;
    for (int i = 0; i < n; i++) closed += (fds[i].revents & (POLLIN | POLLHUP)) != 0;
    printf("closed %d\n", closed);
    return 0;
}

int main(int argc, char **argv) {
    const char *uid = getenv("LOADGEN_UID");
    if (uid && (setgid((gid_t)atoi(uid)) != 0 || setuid((uid_t)atoi(uid)) != 0)) {
        perror("LOADGEN_UID");
        return 2;
    }
    if (argc == 5 && strcmp(argv[1], "rate") == 0) return rate(argv[2], atoi(argv[3]), atof(argv[4]), client);
    if (argc == 5 && strcmp(argv[1], "refuse") == 0) {
        request = REFUSED;
        reply = REFUSAL;
        return rate(argv[2], atoi(argv[3]), atof(argv[4]), client);
    }
    if (argc == 5 && strcmp(argv[1], "share") == 0) {
        request = "";
        reply = TOO_MANY;
        return rate(argv[2], atoi(argv[3]), atof(argv[4]), client);
    }
    if (argc == 6 && strcmp(argv[1], "varlink") == 0) {
        calls_per_connection = atoi(argv[5]);
        return rate(argv[2], atoi(argv[3]), atof(argv[4]), varlink_client);
    }
    if (argc == 3 && strcmp(argv[1], "once") == 0) return once(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "exec") == 0) return exec_timed(argv + 2);
    if (argc == 5 && strcmp(argv[1], "hold") == 0) return hold(argv[2], atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: loadgen rate|refuse|share PATH THREADS SECONDS | varlink PATH THREADS SECONDS CALLS | once PATH | exec PROGRAM... | hold PATH N SECONDS\n");
    return 2;
}
