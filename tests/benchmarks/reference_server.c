/* The C reference for greeterd's benchmark: the fastest simple greeter we know how to write.
 *
 * Socket-activated (Accept=no, one listening fd 3 from LISTEN_FDS), single thread, epoll.
 * After accept() it tries one non-blocking read at once, since the name has nearly always
 * arrived; only a client that is slow to send is parked in epoll. No limits, no logging:
 * it is a yardstick, not a server to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_FD 3

static void answer(int fd, const char *line, size_t length) {
    char reply[1100];
    int n = snprintf(reply, sizeof reply, "Hello, %.*s\n", (int)length, line);
    if (n > 0) (void)!send(fd, reply, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

/* Returns 1 when the connection was answered and closed. */
static int try_serve(int fd) {
    char buffer[1026];
    ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n <= 0) { close(fd); return 1; }
    char *newline = memchr(buffer, '\n', (size_t)n);
    size_t length = newline ? (size_t)(newline - buffer) : (size_t)n;
    if (length && buffer[length - 1] == '\r') length--;
    answer(fd, buffer, length);
    return 1;
}

int main(void) {
    const char *fds = getenv("LISTEN_FDS");
    if (!fds || atoi(fds) != 1) { fprintf(stderr, "needs exactly one socket from LISTEN_FDS\n"); return 1; }
    fcntl(LISTEN_FD, F_SETFL, fcntl(LISTEN_FD, F_GETFL) | O_NONBLOCK);  /* accept until EAGAIN */
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = { .events = EPOLLIN, .data.fd = LISTEN_FD };
    epoll_ctl(epoll, EPOLL_CTL_ADD, LISTEN_FD, &event);
    struct epoll_event events[256];
    for (;;) {
        int ready = epoll_wait(epoll, events, 256, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd != LISTEN_FD) {
                epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
                if (!try_serve(fd)) close(fd);  /* a spurious wake-up: give up on it */
                continue;
            }
            for (;;) {
                int client = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (client < 0) break;
                if (!try_serve(client)) {
                    struct epoll_event wait = { .events = EPOLLIN, .data.fd = client };
                    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &wait);
                }
            }
        }
    }
}
