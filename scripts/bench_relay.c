/* The benchmark's yardstick for the design card: the least work a process-per-client proxy can do.
 *
 * It forks one process per accepted client, connects it to the backend and copies bytes both ways
 * with poll + read + write: no parsing, no pooling, no routing. Whatever throughput it reaches is
 * the ceiling for any prefork proxy on the same machine, because the cost left is the kernel's (a
 * TCP hop and two process wake-ups per round trip). scripts/bench.sh builds and runs it as the
 * "relay" target. Usage: bench_relay LISTEN_PORT BACKEND_PORT (both on 127.0.0.1). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Copies bytes between the client and a fresh backend connection until either side closes. */
static void serve(int client, int backend_port) {
    struct sockaddr_in addr = loopback(backend_port);
    int backend = socket(AF_INET, SOCK_STREAM, 0);
    if (backend < 0 || connect(backend, (struct sockaddr*)&addr, sizeof addr) != 0) _exit(1);
    set_nodelay(client);
    set_nodelay(backend);
    struct pollfd fds[2] = {{client, POLLIN, 0}, {backend, POLLIN, 0}};
    static char buf[65536];
    for (;;) {
        if (poll(fds, 2, -1) < 0) continue;
        for (int i = 0; i < 2; i++) {
            if (!fds[i].revents) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0 || write(fds[1 - i].fd, buf, (size_t)n) != n) _exit(0);
        }
    }
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT\n", argv[0]);
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
    struct sockaddr_in addr = loopback(atoi(argv[1]));
    int one = 1, listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listener, 128) != 0) {
        perror("bench_relay: listen");
        return 1;
    }
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) continue;
        if (fork() == 0) {
            close(listener);
            serve(client, atoi(argv[2]));
        }
        close(client);
    }
}
