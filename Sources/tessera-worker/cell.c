/*
 * cell.c - mount namespaces made once and joined by each microtask (see
 * cell.h).
 */
#define _GNU_SOURCE
#include "cell.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "child.h"
#include "io.h"
#include "sandbox.h"

/* A worker runs a handful of microtasks at once, each with a uid of its own
 * (the daemon hands them out last-in first-out, so the same few come back);
 * past this many cells, microtasks build their mounts themselves. */
#define MAX_CELLS 256

/* A cell shows the host's mounts as they were when it was made; past this
 * age it is made again when a microtask next needs it. */
#define MAX_AGE_NS (60ull * 1000000000ull)

static struct {
    struct cell *cells[MAX_CELLS];
    size_t count;
    /* The plan whose cell could not be made, logged once. */
    const struct sandbox_plan *failed;
} cells;

bool cell_possible(const struct stage *stage, uint32_t uid)
{
    return uid != TW_ID_UNCHANGED && stage->plan != NULL && stage->plan->cell_key != NULL;
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void close_cell(struct cell *cell)
{
    close(cell->mount_fd);
    if (cell->uts_fd != -1)
        close(cell->uts_fd);
    if (cell->tmp_fd != -1)
        close(cell->tmp_fd);
    for (size_t i = 0; i < cells.count; i++) {
        if (cells.cells[i] == cell) {
            cells.cells[i] = cells.cells[--cells.count];
            break;
        }
    }
    free(cell->key);
    free(cell);
}

/* Receives the helper's descriptors (mount namespace, UTS namespace or
 * nothing, /tmp or nothing), or its error text. */
static bool receive_cell(int socket, struct cell *cell, char *error, size_t error_size)
{
    char text[512];
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(3 * sizeof(int))];
    } control;
    struct iovec iov = {text, sizeof text - 1};
    struct msghdr message = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.space,
        .msg_controllen = sizeof control.space,
    };
    ssize_t got = RETRY(recvmsg(socket, &message, MSG_CMSG_CLOEXEC));
    if (got <= 0) {
        snprintf(error, error_size, "%s", got == 0 ? "the helper ended" : strerror(errno));
        return false;
    }
    text[got] = '\0';
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (header == NULL || header->cmsg_type != SCM_RIGHTS) {
        /* sandbox_fail()'s line, without its newline */
        text[strcspn(text, "\n")] = '\0';
        snprintf(error, error_size, "%s", text);
        return false;
    }
    int fds[3];
    size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds, CMSG_DATA(header), (count < 3 ? count : 3) * sizeof(int));
    if (count != 3 || strcmp(text, "cell") != 0) {
        for (size_t i = 0; i < count && i < 3; i++)
            close(fds[i]);
        snprintf(error, error_size, "the helper sent %zu descriptors", count);
        return false;
    }
    /* The helper sends /dev/null for what it does not have. */
    cell->mount_fd = fds[0];
    cell->uts_fd = fds[1];
    cell->tmp_fd = fds[2];
    int *optional[] = {&cell->uts_fd, &cell->tmp_fd};
    for (int i = 0; i < 2; i++) {
        struct stat is;
        if (fstat(*optional[i], &is) == 0 && S_ISCHR(is.st_mode)) {
            close(*optional[i]);
            *optional[i] = -1;
        }
    }
    return true;
}

/* The helper: a fork of the zygote that makes the namespaces and mounts,
 * sends descriptors of them and ends. Its standard error is the socket, so
 * a failed step (sandbox_fail()) comes back as text. */
static _Noreturn void helper(const struct sandbox_plan *plan, int socket)
{
    if (dup2(socket, STDERR_FILENO) == -1)
        _exit(CHILD_SETUP_FAILED);
    sandbox_make_cell(plan);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fds[3] = {
        open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC),
        sandbox_cell_has_uts(plan) ? open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC) : devnull,
        sandbox_cell_has_tmp(plan) ? open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : devnull,
    };
    for (int i = 0; i < 3; i++) {
        if (fds[i] == -1)
            sandbox_fail("opening the cell's namespaces", NULL);
    }
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof fds)];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {(void *)"cell", 4};
    struct msghdr message = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.space,
        .msg_controllen = sizeof control.space,
    };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(header), fds, sizeof fds);
    _exit(RETRY(sendmsg(socket, &message, MSG_NOSIGNAL)) == -1 ? CHILD_SETUP_FAILED : 0);
}

static struct cell *make_cell(const struct stage *stage, uint32_t uid)
{
    char error[600] = "";
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == -1) {
        snprintf(error, sizeof error, "socketpair: %s", strerror(errno));
        goto failed;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(pair[0]);
        helper(stage->plan, pair[1]);
    }
    close(pair[1]);
    if (pid == -1) {
        snprintf(error, sizeof error, "fork: %s", strerror(errno));
        close(pair[0]);
        goto failed;
    }
    struct cell *cell = xcalloc(1, sizeof *cell);
    bool received = receive_cell(pair[0], cell, error, sizeof error);
    close(pair[0]);
    /* Reaped here, so the zygote's loop (which reaps every child) never
     * sees it. */
    int status;
    while (waitpid(pid, &status, __WALL) == -1 && errno == EINTR)
        continue;
    if (!received) {
        free(cell);
        goto failed;
    }
    cell->key = xasprintf("%s", stage->plan->cell_key);
    cell->made_ns = monotonic_ns();
    cell->uid = uid;
    cell->tmp_entries = cell->tmp_fd != -1 ? io_count_entries(cell->tmp_fd) : 0;
    return cell;

failed:
    if (cells.failed != stage->plan) {
        cells.failed = stage->plan;
        worker_log("stage %u: cannot make a cell, microtasks build their mounts themselves: %s",
                   stage->id, error);
    }
    return NULL;
}

struct cell *cell_acquire(const struct stage *stage, uint32_t uid)
{
    uint64_t now = monotonic_ns();
    for (size_t i = cells.count; i-- > 0;) {
        struct cell *cell = cells.cells[i];
        if (!cell->busy && now - cell->made_ns > MAX_AGE_NS)
            close_cell(cell);
    }
    for (size_t i = 0; i < cells.count; i++) {
        struct cell *cell = cells.cells[i];
        if (cell->uid == uid && strcmp(cell->key, stage->plan->cell_key) == 0) {
            /* The daemon lends a uid to one running microtask at a time;
             * should it not, the second one builds its own mounts. */
            if (cell->busy)
                return NULL;
            cell->busy = true;
            cell->uses++;
            return cell;
        }
    }
    if (cells.failed == stage->plan)
        return NULL;
    if (cells.count == MAX_CELLS) {
        /* The oldest idle one makes room. */
        struct cell *oldest = NULL;
        for (size_t i = 0; i < cells.count; i++) {
            if (!cells.cells[i]->busy && (oldest == NULL || cells.cells[i]->made_ns < oldest->made_ns))
                oldest = cells.cells[i];
        }
        if (oldest == NULL)
            return NULL;
        close_cell(oldest);
    }
    struct cell *cell = make_cell(stage, uid);
    if (cell == NULL)
        return NULL;
    cell->busy = true;
    cell->uses = 1;
    cells.cells[cells.count++] = cell;
    return cell;
}

void cell_release(struct cell *cell)
{
    cell->busy = false;
    if (cell->tmp_fd != -1 && io_count_entries(cell->tmp_fd) != cell->tmp_entries)
        close_cell(cell);
}

bool cell_stale(struct cell *cell)
{
    return monotonic_ns() - cell->made_ns > MAX_AGE_NS ||
           (cell->tmp_fd != -1 && io_count_entries(cell->tmp_fd) != cell->tmp_entries);
}

void cell_forget(const struct sandbox_plan *plan)
{
    if (cells.failed == plan)
        cells.failed = NULL;
}

void cell_enter(const struct cell *cell)
{
    if (setns(cell->mount_fd, CLONE_NEWNS) == -1)
        sandbox_fail("joining the cell's mount namespace", NULL);
    if (cell->uts_fd != -1 && setns(cell->uts_fd, CLONE_NEWUTS) == -1)
        sandbox_fail("joining the cell's UTS namespace", NULL);
}
