/*
 * cgroup.c - a cgroup v2 per sandboxed microtask (see cgroup.h).
 */
#define _GNU_SOURCE
#include "cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "io.h"

/* A cgroup still busy this long after cgroup.kill is logged (once). */
#define CGROUP_STUCK_NS (10 * 1000000000ull)
/* How long the exiting zygote keeps trying to remove the cgroups. */
#define SHUT_DOWN_TRIES 200
#define SHUT_DOWN_PAUSE_NS 10000000L
/* Milliseconds to wait for a leftover cgroup of an earlier worker. */
#define STALE_TRIES 20

#define TASK_NAME_SIZE sizeof "task-18446744073709551615"

/* A cgroup whose processes were killed but were not all gone yet. */
struct pending {
    uint64_t token;
    uint64_t since_ns;
    bool logged;
};

static struct {
    char *directory; /* NULL: no cgroups */
    uint32_t controllers;
    int fd; /* the directory, or -1 when it could not be opened... */
    char *problem; /* ...and why */
    bool kill_missing; /* no cgroup.kill (a kernel before 5.14) */
    struct pending *pending;
    size_t pending_count;
    size_t pending_capacity;
    uint64_t next_retry_ns;
} cgroups = {.fd = -1};

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void task_name(char name[TASK_NAME_SIZE], uint64_t token)
{
    snprintf(name, TASK_NAME_SIZE, "task-%llu", (unsigned long long)token);
}

bool cgroup_configure(const char *directory, uint32_t controllers)
{
    if (directory[0] == '\0')
        return true;
    if (directory[0] != '/')
        return false;
    cgroups.directory = xstrdup(directory);
    cgroups.controllers = controllers;
    cgroups.fd = (int)RETRY(open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct statfs filesystem;
    if (cgroups.fd == -1)
        cgroups.problem = xstrdup(strerror(errno));
    else if (fstatfs(cgroups.fd, &filesystem) == -1)
        cgroups.problem = xstrdup(strerror(errno));
    else if (filesystem.f_type != CGROUP2_SUPER_MAGIC)
        cgroups.problem = xasprintf("%s is not a cgroup v2 directory", directory);
    if (cgroups.problem != NULL) {
        worker_log("cannot use the cgroup directory %s: %s; sandboxed microtasks will fail",
                   directory, cgroups.problem);
        if (cgroups.fd != -1)
            close(cgroups.fd);
        cgroups.fd = -1;
        return true;
    }
    if (faccessat(cgroups.fd, "cgroup.kill", F_OK, 0) == -1) {
        cgroups.kill_missing = true;
        worker_log("%s has no cgroup.kill (Linux 5.14): processes that leave a microtask's "
                   "process group may outlive it",
                   directory);
    }
    return true;
}

bool cgroup_active(void)
{
    return cgroups.directory != NULL;
}

bool cgroup_limits_memory(const struct stage_limits *limits)
{
    return (cgroups.controllers & TW_CGROUP_MEMORY) && limits->memory_bytes != 0;
}

char *cgroup_task_path(uint64_t token)
{
    return xasprintf("%s/task-%llu", cgroups.directory, (unsigned long long)token);
}

/* Writes `text` to the cgroup file `name` of `fd` with one write(). */
static int write_file(int fd, const char *name, const char *text)
{
    int file = (int)RETRY(openat(fd, name, O_WRONLY | O_CLOEXEC));
    if (file == -1)
        return -1;
    size_t length = strlen(text);
    ssize_t written = RETRY(write(file, text, length));
    int error = errno;
    close(file);
    if (written == (ssize_t)length)
        return 0;
    errno = written == -1 ? error : EIO;
    return -1;
}

static int write_number(int fd, const char *name, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)value);
    return write_file(fd, name, text);
}

/* Writes the limits a microtask's cgroup has controllers for. Returns the
 * name of the file that could not be written, or NULL. */
static const char *write_limits(int fd, const struct stage_limits *limits)
{
    if (cgroup_limits_memory(limits)) {
        if (write_number(fd, "memory.max", limits->memory_bytes) == -1)
            return "memory.max";
        /* Without swap accounting (swapaccount=0) there is no such file,
         * and no swap to count against the microtask. */
        if (write_file(fd, "memory.swap.max", "0") == -1 && errno != ENOENT)
            return "memory.swap.max";
        if (write_file(fd, "memory.oom.group", "1") == -1)
            return "memory.oom.group";
    }
    if ((cgroups.controllers & TW_CGROUP_PIDS) && limits->processes != 0 &&
        write_number(fd, "pids.max", limits->processes) == -1)
        return "pids.max";
    if ((cgroups.controllers & TW_CGROUP_CPU) && limits->cpu_quota_percent != 0) {
        /* percent of one CPU per 100 ms period; beyond what fits: none. */
        char text[48];
        uint64_t percent = limits->cpu_quota_percent;
        if (percent > UINT64_MAX / 1000)
            snprintf(text, sizeof text, "max 100000");
        else
            snprintf(text, sizeof text, "%llu 100000", (unsigned long long)(percent * 1000));
        if (write_file(fd, "cpu.max", text) == -1)
            return "cpu.max";
    }
    return NULL;
}

static void add_pending(uint64_t token)
{
    if (cgroups.pending_count == cgroups.pending_capacity) {
        cgroups.pending_capacity = cgroups.pending_capacity ? cgroups.pending_capacity * 2 : 16;
        cgroups.pending = xrealloc(cgroups.pending,
                                   cgroups.pending_capacity * sizeof *cgroups.pending);
    }
    uint64_t now = monotonic_ns();
    if (cgroups.pending_count == 0)
        cgroups.next_retry_ns = now + CGROUP_RETRY_MS * 1000000ull;
    cgroups.pending[cgroups.pending_count++] = (struct pending){token, now, false};
}

/* Removes a cgroup of the same name that an earlier worker left behind
 * (one killed before it could remove it), killing what is in it and
 * waiting up to STALE_TRIES ms for that to end: this happens once per
 * leftover, and spares the microtask a failure. Returns 0 when it is gone;
 * otherwise it is left to cgroup_retry(). */
static int remove_stale(uint64_t token, const char *name)
{
    int fd = (int)RETRY(openat(cgroups.fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd != -1) {
        if (!cgroups.kill_missing)
            (void)write_file(fd, "cgroup.kill", "1");
        close(fd);
    }
    for (int tries = 0;; tries++) {
        if (unlinkat(cgroups.fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || tries == STALE_TRIES)
            break;
        struct timespec pause = {0, 1000000L};
        nanosleep(&pause, NULL);
    }
    if (errno == EBUSY)
        add_pending(token);
    return -1;
}

int cgroup_task_create(uint64_t token, const struct stage_limits *limits, char **error)
{
    if (cgroups.fd == -1) {
        *error = xasprintf("cannot create the microtask's cgroup %s/task-%llu: %s",
                           cgroups.directory, (unsigned long long)token, cgroups.problem);
        return -1;
    }
    char name[TASK_NAME_SIZE];
    task_name(name, token);
    int made = mkdirat(cgroups.fd, name, 0755);
    if (made == -1 && errno == EEXIST) {
        if (remove_stale(token, name) == -1) {
            *error = xasprintf("cannot create the microtask's cgroup %s/%s: a cgroup of that "
                               "name exists, and cannot be removed: %s",
                               cgroups.directory, name, strerror(errno));
            return -1;
        }
        made = mkdirat(cgroups.fd, name, 0755);
    }
    if (made == -1) {
        *error = xasprintf("cannot create the microtask's cgroup %s/%s: %s", cgroups.directory,
                           name, strerror(errno));
        return -1;
    }
    int fd = (int)RETRY(openat(cgroups.fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const char *failed = fd == -1 ? "" : write_limits(fd, limits);
    if (failed == NULL)
        return fd;
    int saved = errno;
    *error = xasprintf("cannot create the microtask's cgroup %s/%s: %s%s%s", cgroups.directory,
                       name, failed, failed[0] != '\0' ? ": " : "", strerror(saved));
    if (fd != -1)
        close(fd);
    /* Empty: nothing ever ran in it. */
    if (unlinkat(cgroups.fd, name, AT_REMOVEDIR) == -1)
        worker_log("removing the cgroup %s/%s: %s", cgroups.directory, name, strerror(errno));
    return -1;
}

void cgroup_task_kill(int fd)
{
    if (cgroups.kill_missing || write_file(fd, "cgroup.kill", "1") == 0)
        return;
    worker_log("cannot kill the processes of a microtask's cgroup: %s", strerror(errno));
}

/* True when memory.events counts an OOM kill. */
static bool oom_killed(int fd)
{
    int file = (int)RETRY(openat(fd, "memory.events", O_RDONLY | O_CLOEXEC));
    if (file == -1)
        return false;
    char text[512];
    ssize_t got = RETRY(read(file, text, sizeof text - 1));
    close(file);
    if (got <= 0)
        return false;
    text[got] = '\0';
    /* "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n" */
    for (char *line = text; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        char *space = strchr(line, ' ');
        if (space != NULL) {
            *space = '\0';
            if ((strcmp(line, "oom_kill") == 0 || strcmp(line, "oom_group_kill") == 0) &&
                strtoull(space + 1, NULL, 10) > 0)
                return true;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

enum removal { REMOVED, BUSY, FAILED };

/* Removes a microtask's cgroup. BUSY while processes are in it; FAILED
 * (logged) when trying again would not help. */
static enum removal remove_cgroup(uint64_t token)
{
    char name[TASK_NAME_SIZE];
    task_name(name, token);
    if (unlinkat(cgroups.fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
        return REMOVED;
    if (errno == EBUSY)
        return BUSY;
    worker_log("cannot remove the cgroup %s/%s: %s", cgroups.directory, name, strerror(errno));
    return FAILED;
}

uint32_t cgroup_task_finish(uint64_t token, int fd)
{
    uint32_t flags = (cgroups.controllers & TW_CGROUP_MEMORY) && oom_killed(fd)
                         ? (uint32_t)TW_FLAG_OOM_KILLED
                         : 0;
    /* The removal comes first: the kernel refuses to remove a cgroup with
     * processes in it, so when it succeeds (a microtask in a pid namespace
     * always leaves an empty one) there was nothing to kill, and the
     * cgroup.kill is saved (~15 µs). */
    enum removal removal = remove_cgroup(token);
    if (removal != REMOVED)
        cgroup_task_kill(fd);
    if (removal == BUSY)
        add_pending(token);
    close(fd);
    return flags;
}

int cgroup_timeout(uint64_t now_ns)
{
    if (cgroups.pending_count == 0)
        return -1;
    if (cgroups.next_retry_ns <= now_ns)
        return 0;
    return (int)((cgroups.next_retry_ns - now_ns + 999999) / 1000000);
}

/* Tries to remove every waiting cgroup once; keeps those still busy. */
static void retry_all(uint64_t now_ns)
{
    size_t kept = 0;
    for (size_t i = 0; i < cgroups.pending_count; i++) {
        struct pending *entry = &cgroups.pending[i];
        if (remove_cgroup(entry->token) != BUSY)
            continue;
        /* An entry may be younger than `now_ns`, the start of the turn. */
        uint64_t age = now_ns > entry->since_ns ? now_ns - entry->since_ns : 0;
        if (!entry->logged && age >= CGROUP_STUCK_NS) {
            entry->logged = true;
            worker_log("the cgroup %s/task-%llu is still busy %llu s after cgroup.kill",
                       cgroups.directory, (unsigned long long)entry->token,
                       (unsigned long long)(age / 1000000000u));
        }
        cgroups.pending[kept++] = *entry;
    }
    cgroups.pending_count = kept;
}

void cgroup_retry(uint64_t now_ns)
{
    if (cgroups.pending_count == 0 || now_ns < cgroups.next_retry_ns)
        return;
    retry_all(now_ns);
    cgroups.next_retry_ns = now_ns + CGROUP_RETRY_MS * 1000000ull;
}

void cgroup_shut_down(void)
{
    if (cgroups.pending_count == 0)
        return;
    for (size_t i = 0; i < cgroups.pending_count && !cgroups.kill_missing; i++) {
        char name[TASK_NAME_SIZE];
        task_name(name, cgroups.pending[i].token);
        int fd = (int)RETRY(openat(cgroups.fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd != -1) {
            cgroup_task_kill(fd);
            close(fd);
        }
    }
    for (int tries = 0; tries < SHUT_DOWN_TRIES && cgroups.pending_count > 0; tries++) {
        struct timespec pause = {0, SHUT_DOWN_PAUSE_NS};
        if (tries > 0)
            nanosleep(&pause, NULL);
        retry_all(monotonic_ns());
    }
    for (size_t i = 0; i < cgroups.pending_count; i++)
        worker_log("leaving the cgroup %s/task-%llu behind: it is still busy",
                   cgroups.directory, (unsigned long long)cgroups.pending[i].token);
}
