/*
 * child.c - the sandbox a microtask runs in.
 *
 * This code runs in the forked copy of the single-threaded zygote, so it
 * may use malloc and stdio until the executor is called. Two profiles:
 *
 * Rlimits only (a stage without TW_SANDBOX_ENABLED):
 *   1. setsid(): the microtask gets its own session and process group, the
 *      unit the zygote and the daemon kill.
 *   2. PR_SET_PDEATHSIG, then a check that the zygote did not die before
 *      it took effect: no microtask outlives its zygote.
 *   3. Descriptors: /dev/null, the two output pipes and the channel at
 *      0 to 3, everything else closed, before any plugin code runs.
 *   4. Signal dispositions and mask back to the defaults.
 *   5. The task the executor sees, and its environment, are built before
 *      the resource limits, so a tight memory limit cannot make them fail.
 *   6. The environment (the stage's, and the microtask's TESSERA_*
 *      variables), resource limits, no_new_privs, then the executor.
 *
 * The sandbox (see sandbox.h for the reasons of this order): setsid;
 * descriptors 0 to 3 in place (the others stay open until the namespace
 * and pidfd descriptors have served); signals; namespaces and mounts; the
 * task and its environment; capabilities and identity, then
 * PR_SET_PDEATHSIG (an identity switch clears it) and the zygote check;
 * no_new_privs; Landlock (with descriptors the zygote opened); every other
 * descriptor closed; the environment; resource limits (after the mounts
 * and Landlock, so a tight RLIMIT_AS or RLIMIT_NOFILE cannot break them);
 * seccomp, last.
 *
 * Either way the child waits for the zygote's word on the channel
 * (channel.h) before its identity switch (sandbox) or its executor (rlimits
 * only): the zygote is tracing it by then (trace.h), so whatever the
 * executor does to itself, the kernel's account of it reaches the zygote.
 * The executor runs with every signal at its default disposition; no
 * handler of ours stands between it and the kernel.
 *
 * A sandboxed microtask may have a cgroup of its own (cgroup.h). It starts
 * in it (clone3); only on a kernel without CLONE_INTO_CGROUP does the child
 * move itself in, before anything else. When the cgroup's memory.max
 * holds the `memory` limit, no RLIMIT_AS is set.
 */
#define _GNU_SOURCE
#include "child.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "channel.h"
#include "host.h"
#include "io.h"
#include "sandbox.h"

static const int limited_resources[] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NOFILE, RLIMIT_NPROC,
                                        RLIMIT_FSIZE};

/* Filled in once by child_prepare() in the zygote; children inherit it. */
static struct {
    pid_t zygote_pid;
    int devnull_fd;
    bool restore_nofile;
    struct rlimit original_nofile;
    /* The zygote's hard limits: an unprivileged worker cannot go above
     * them, and a stage asking for more gets what the worker has. */
    rlim_t hard_limit[RLIM_NLIMITS];
    /* Signals whose disposition the zygote (or a plugin's entry point)
     * changed, so a child resets only those instead of all 64. */
    int changed_signals[NSIG];
    int changed_signal_count;
} prepared;

void child_prepare(int devnull_fd, const struct rlimit *original_nofile)
{
    prepared.zygote_pid = getpid();
    prepared.devnull_fd = devnull_fd;
    if (original_nofile != NULL) {
        prepared.restore_nofile = true;
        prepared.original_nofile = *original_nofile;
    }
    for (size_t i = 0; i < sizeof limited_resources / sizeof limited_resources[0]; i++) {
        struct rlimit current;
        int resource = limited_resources[i];
        prepared.hard_limit[resource] =
            getrlimit(resource, &current) == 0 ? current.rlim_max : RLIM_INFINITY;
    }
    for (int signo = 1; signo < NSIG; signo++) {
        struct sigaction action;
        if (signo == SIGKILL || signo == SIGSTOP || sigaction(signo, NULL, &action) == -1)
            continue;
        if ((action.sa_flags & SA_SIGINFO) || action.sa_handler != SIG_DFL)
            prepared.changed_signals[prepared.changed_signal_count++] = signo;
    }
}

/* Gives up on a microtask whose sandbox could not be set up. Once the
 * descriptors are in place, the message lands in the task's stderr. */
static _Noreturn void fail(const char *step)
{
    char line[256];
    int length = snprintf(line, sizeof line,
                          "tessera-worker: cannot set up the microtask: %s: %s\n", step,
                          strerror(errno));
    if (length > 0)
        (void)io_write_all(STDERR_FILENO, line, (size_t)length < sizeof line ? (size_t)length
                                                                             : sizeof line - 1);
    _exit(CHILD_SETUP_FAILED);
}

static void place_descriptors(const struct child_task *task)
{
    /* Every source descriptor is above 2 (the zygote keeps 0 to 2 open),
     * so the order below never overwrites one before it is copied; only
     * the channel may already be at 3, and it is close-on-exec already. */
    if (RETRY(dup2(prepared.devnull_fd, STDIN_FILENO)) == -1 ||
        RETRY(dup2(task->stdout_fd, STDOUT_FILENO)) == -1 ||
        RETRY(dup2(task->stderr_fd, STDERR_FILENO)) == -1)
        fail("redirecting standard input and output");
    /* The channel stays close-on-exec, so programs an executor runs do not
     * inherit it. */
    if (task->channel_fd != CHANNEL_FD &&
        RETRY(dup3(task->channel_fd, CHANNEL_FD, O_CLOEXEC)) == -1)
        fail("placing the result channel");
    /* The pipes were made non-blocking for the zygote's ends; the child's
     * ends share that flag and must block. */
    for (int fd = STDOUT_FILENO; fd <= CHANNEL_FD; fd++) {
        if (RETRY(fcntl(fd, F_SETFL, 0)) == -1)
            fail("making the pipes blocking");
    }
}

/* Moves the calling process into the cgroup `fd`. */
static int join_cgroup(int fd)
{
    int procs = (int)RETRY(openat(fd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
    if (procs == -1)
        return -1;
    ssize_t written = RETRY(write(procs, "0", 1));
    int error = written == 0 ? EIO : errno;
    close(procs);
    errno = error;
    return written == 1 ? 0 : -1;
}

static void close_other_descriptors(void)
{
    if (close_range(CHANNEL_FD + 1, ~0U, 0) == 0)
        return;
    /* Kernels before 5.9 have no close_range(): list what is open. */
    DIR *directory = opendir("/proc/self/fd");
    if (directory == NULL)
        fail("listing open descriptors");
    struct dirent *entry;
    while ((entry = readdir(directory)) != NULL) {
        int fd = atoi(entry->d_name);
        if (fd > CHANNEL_FD && fd != dirfd(directory))
            close(fd);
    }
    closedir(directory);
}

static void reset_signals(void)
{
    struct sigaction default_action = {.sa_handler = SIG_DFL};
    sigemptyset(&default_action.sa_mask);
    for (int i = 0; i < prepared.changed_signal_count; i++) {
        if (sigaction(prepared.changed_signals[i], &default_action, NULL) == -1)
            fail("resetting signal dispositions");
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) == -1)
        fail("unblocking signals");
}

static rlim_t at_most(uint64_t wanted, rlim_t ceiling)
{
    return wanted < ceiling ? (rlim_t)wanted : ceiling;
}

static void set_limit(int resource, const char *name, uint64_t soft, uint64_t hard)
{
    rlim_t ceiling = prepared.hard_limit[resource];
    struct rlimit limit = {.rlim_cur = at_most(soft, ceiling), .rlim_max = at_most(hard, ceiling)};
    if (setrlimit(resource, &limit) == -1)
        fail(name);
}

static uint64_t cpu_seconds(const struct stage_limits *limits)
{
    return limits->cpu_ms / 1000 + (limits->cpu_ms % 1000 != 0);
}

static void apply_limits(const struct stage_limits *limits, bool memory_by_cgroup, bool pooled,
                         bool stem)
{
    /* A stem has no CPU limit of its own (each process it forks sets the
     * stage's as it starts), and counts itself in RLIMIT_NPROC, which
     * counts the uid's processes: it leaves its microtask as many as any
     * other microtask has. */
    if (limits->cpu_ms != 0 && !stem) {
        /* SIGXCPU at the limit (rounded up to whole seconds), SIGKILL one
         * second later if the executor ignores it. A pooled process keeps
         * no hard limit (it could not raise it again without a
         * capability): it moves its soft limit before each microtask, and
         * the zygote, which traces it, kills it at SIGXCPU. */
        uint64_t seconds = cpu_seconds(limits);
        set_limit(RLIMIT_CPU, "RLIMIT_CPU", seconds, pooled ? RLIM_INFINITY : seconds + 1);
    }
    if (limits->memory_bytes != 0 && !memory_by_cgroup)
        set_limit(RLIMIT_AS, "RLIMIT_AS", limits->memory_bytes, limits->memory_bytes);
    if (limits->open_files != 0)
        set_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", limits->open_files, limits->open_files);
    else if (prepared.restore_nofile && setrlimit(RLIMIT_NOFILE, &prepared.original_nofile) == -1)
        fail("RLIMIT_NOFILE");
    if (limits->processes != 0) {
        uint64_t processes = limits->processes + (stem ? 1 : 0);
        set_limit(RLIMIT_NPROC, "RLIMIT_NPROC", processes, processes);
    }
    if (limits->file_size_bytes != 0)
        set_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", limits->file_size_bytes,
                  limits->file_size_bytes);
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) == -1)
        fail("RLIMIT_CORE");
}

/* The variables that tell a microtask (and the programs its executor runs)
 * which one it is. A stage's environment entries of these names are
 * dropped, also when the microtask has no value for one, so that none of
 * them can say anything but the truth. */
static const char *const task_variables[] = {
    "TESSERA_ITEM", "TESSERA_INDEX",   "TESSERA_RUN",     "TESSERA_STAGE",
    "TESSERA_JOB",  "TESSERA_ATTEMPT", "TESSERA_RUN_DIR", "TESSERA_INPUT",
};
#define TASK_VARIABLE_COUNT (sizeof task_variables / sizeof task_variables[0])

/* execve() refuses any single argument or environment string over 128 KiB
 * (MAX_ARG_STRLEN) with E2BIG, so an executor that runs a program would
 * fail for a long TESSERA_ITEM: an item longer than this is left out of
 * the environment (the executor has it from host->item(), a program from
 * its parameters). */
#define ITEM_VARIABLE_MAX 65536

static bool is_task_variable(const char *entry)
{
    for (size_t i = 0; i < TASK_VARIABLE_COUNT; i++) {
        size_t length = strlen(task_variables[i]);
        if (strncmp(entry, task_variables[i], length) == 0 && entry[length] == '=')
            return true;
    }
    return false;
}

/* The microtask's environment: the stage's (NULL-terminated in its
 * definition), then the TESSERA_* variables. Returns NULL when out of
 * memory. */
static char **task_environment(const struct stage *stage, const struct tessera_task *microtask,
                               void *(*allocate)(size_t size))
{
    const struct stage_context *context = &stage->context;
    /* In the order of task_variables; NULL for a variable left out. */
    const char *values[TASK_VARIABLE_COUNT] = {
        microtask->item_length <= ITEM_VARIABLE_MAX ? microtask->item : NULL,
        microtask->index_text,
        microtask->run_text,
        context->stage_name,
        context->job_name,
        microtask->attempt_text,
        context->run_dir[0] != '\0' ? context->run_dir : NULL,
        context->input_path[0] != '\0' ? context->input_path : NULL,
    };
    size_t bytes = 0;
    for (size_t i = 0; i < TASK_VARIABLE_COUNT; i++) {
        if (values[i] != NULL)
            bytes += strlen(task_variables[i]) + 1 + strlen(values[i]) + 1;
    }
    const struct stage_list *inherited = &stage->sandbox.environment;
    char **environment = allocate((inherited->count + TASK_VARIABLE_COUNT + 1) * sizeof *environment);
    char *strings = allocate(bytes ? bytes : 1);
    if (environment == NULL || strings == NULL)
        return NULL;
    size_t used = 0;
    for (uint32_t i = 0; i < inherited->count; i++) {
        if (!is_task_variable(inherited->items[i]))
            environment[used++] = (char *)inherited->items[i];
    }
    for (size_t i = 0; i < TASK_VARIABLE_COUNT; i++) {
        if (values[i] == NULL)
            continue;
        environment[used++] = strings;
        strings = stpcpy(stpcpy(stpcpy(strings, task_variables[i]), "="), values[i]) + 1;
    }
    environment[used] = NULL;
    return environment;
}

/* Waits for the zygote's word that it is tracing this process (channel.h).
 * Ends the child when the zygote is gone instead. */
static void wait_until_traced(void)
{
    char go = 0;
    if (RETRY(read(CHANNEL_FD, &go, 1)) != 1 || go != CHANNEL_GO)
        _exit(CHILD_SETUP_FAILED);
}

/* A pooled process (isolation: pooled): the first microtask came with the
 * fork, each next one as a CHANNEL_POOL_TASK message (channel.h); its
 * standard output and error stay the same two pipes. Between two
 * microtasks, as the pid namespace's process 1, it kills and reaps
 * whatever the last one left running, so that all a microtask wrote is in
 * the pipes when it says it ended. It ends (and the zygote replaces it) after
 * recycle_after microtasks, after one that did not succeed, when its peak
 * resident set has grown 64 MiB past what it was after the first, or when
 * the channel closes. */
#define POOL_GROWTH_KIB (64 * 1024)

/* Reads `length` bytes; false at the end of the stream before the first. */
static bool read_exact(int fd, void *into, size_t length)
{
    size_t have = 0;
    while (have < length) {
        ssize_t part = RETRY(read(fd, (char *)into + have, length - have));
        if (part == 0 && have == 0)
            return false;
        if (part <= 0)
            _exit(CHILD_SETUP_FAILED);
        have += (size_t)part;
    }
    return true;
}

/* The next microtask on the channel (channel.h): its item, NUL-terminated,
 * in memory from `allocate`. False at the end of the channel. */
static bool pool_receive(int fd, void *(*allocate)(size_t size), char **item, size_t *item_length,
                         uint64_t *index, uint32_t *attempt)
{
    struct channel_pool_task request;
    if (!read_exact(fd, &request, sizeof request))
        return false;
    *item = allocate((size_t)request.item_length + 1);
    if (*item == NULL || (request.item_length > 0 && !read_exact(fd, *item, request.item_length)))
        _exit(CHILD_SETUP_FAILED);
    (*item)[request.item_length] = '\0';
    *item_length = request.item_length;
    *index = request.index;
    *attempt = request.attempt;
    return true;
}

static uint64_t timeval_us(struct timeval value)
{
    return (uint64_t)value.tv_sec * 1000000u + (uint64_t)value.tv_usec;
}

static _Noreturn void pool_loop(const struct child_task *task, struct tessera_task *first)
{
    const struct stage *stage = task->stage;
    struct tessera_task microtask = *first;
    char *item = NULL;
    uint64_t used_us = 0;
    uint64_t children_us = 0; /* what reaped descendants used, so far */
    long baseline_kib = 0;
    for (uint32_t done = 1;; done++) {
        int status = stage->executor->execute(&host_table, &microtask);
        fflush(NULL);
        (void)host_task_send_result(&microtask);
        /* Process 1 of the namespace: every other process in it is its
         * descendant, and an orphan becomes its child, so with no child
         * (ECHILD) the namespace holds no one else. Otherwise kill(-1)
         * reaches every other process in it, and nothing forks past it
         * (it walks every process of the system, so only when needed). */
        bool alone = waitpid(-1, NULL, WNOHANG | __WALL) == -1 && errno == ECHILD;
        bool spawned = !alone;
        if (!alone) {
            (void)kill(-1, SIGKILL);
            while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
                continue;
        }
        struct rusage self, children = {0};
        getrusage(RUSAGE_SELF, &self);
        if (spawned || children_us != 0)
            getrusage(RUSAGE_CHILDREN, &children);
        children_us = timeval_us(children.ru_utime) + timeval_us(children.ru_stime);
        uint64_t now_us = timeval_us(self.ru_utime) + timeval_us(self.ru_stime) + children_us;
        int code = status < 0 ? TESSERA_FAILED : status > 255 ? 255 : status;
        struct {
            struct channel_header header;
            struct channel_pool_done done;
        } report = {
            {CHANNEL_POOL_DONE, sizeof(struct channel_pool_done)},
            {.exit_code = code, .cpu_us = now_us - used_us, .max_rss_kib = (uint64_t)self.ru_maxrss},
        };
        used_us = now_us;
        if (done == 1)
            baseline_kib = self.ru_maxrss;
        bool last = code != 0 || done >= stage->pool_recycle_after ||
                    self.ru_maxrss > baseline_kib + POOL_GROWTH_KIB;
        report.done.last = last;
        if (io_write_all(CHANNEL_FD, &report, sizeof report) == -1 || last)
            _exit(0);

        size_t item_length;
        uint64_t index;
        uint32_t attempt;
        free(item);
        if (!pool_receive(CHANNEL_FD, malloc, &item, &item_length, &index, &attempt))
            _exit(0);
        if (host_task_init(&microtask, stage, item, item_length, index, attempt, task->result_limit) ==
            -1)
            _exit(CHILD_SETUP_FAILED);
        char **environment = task_environment(stage, &microtask, malloc);
        if (environment == NULL)
            _exit(CHILD_SETUP_FAILED);
        environ = environment;
        if (stage->limits.cpu_ms != 0) {
            /* This microtask's CPU limit, counted from what the process
             * has used so far. */
            struct rlimit limit = {
                .rlim_cur = (rlim_t)((timeval_us(self.ru_utime) + timeval_us(self.ru_stime)) / 1000000u +
                                     1 + cpu_seconds(&stage->limits)),
                .rlim_max = RLIM_INFINITY};
            if (setrlimit(RLIMIT_CPU, &limit) == -1)
                _exit(CHILD_SETUP_FAILED);
        }
    }
}

/* A stem (isolation: process): a process sandboxed once, as any
 * microtask's would be, that forks each microtask of its stage and uid in
 * turn. The fork is the microtask's process: a copy of the stem, which
 * never runs plugin code, so each microtask starts from the same clean
 * state with the namespaces, identity, Landlock domain, seccomp filter and
 * resource limits it inherits, and pays none of their cost. The first
 * microtask's process is forked with its item; each next one is forked as
 * soon as the last is done, ahead of its microtask, and waits for its item
 * on its channel (a channel_pool_task and the item, from the zygote), so
 * that the fork is not between the daemon's TASK and the executor.
 *
 * Between two microtasks, as process 1 of the pid namespace, it kills and
 * reaps whatever the last one left running, and checks what the last one
 * could have left to the next in the namespaces they share: its IPC
 * namespace (System V objects, read from /proc/sysvipc, and POSIX message
 * queues, read from a mount of its own mqueue filesystem that no microtask
 * can reach). The zygote checks the cell's /tmp. When anything was left,
 * the stem ends after reporting, and the next microtask gets a new one.
 * SIGCHLD stays blocked in the stem (it reaps with waitpid), so that no
 * microtask's end stops it for its tracer. */
enum { STEM_SHM, STEM_SEM, STEM_MSG, STEM_MQUEUE, STEM_CHECKS };

struct stem {
    int control_fd;
    int checks[STEM_CHECKS]; /* -1 when it could not be opened */
};

static void stem_open_checks(struct stem *stem)
{
    static const char *const sysv[] = {"/proc/sysvipc/shm", "/proc/sysvipc/sem",
                                       "/proc/sysvipc/msg"};
    for (int i = 0; i < STEM_MQUEUE; i++)
        stem->checks[i] = (int)RETRY(open(sysv[i], O_RDONLY | O_CLOEXEC));
    stem->checks[STEM_MQUEUE] = -1;
    /* A detached mount of this IPC namespace's mqueue filesystem (the
     * namespace's own superblock), while the stem still may make one. */
    int context = fsopen("mqueue", FSOPEN_CLOEXEC);
    if (context == -1)
        return;
    int mount_fd = -1;
    if (fsconfig(context, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mount_fd = fsmount(context, FSMOUNT_CLOEXEC, 0);
    close(context);
    if (mount_fd == -1)
        return;
    stem->checks[STEM_MQUEUE] = (int)RETRY(openat(mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    close(mount_fd);
}

/* Whether the IPC namespace holds nothing: each /proc/sysvipc file is its
 * header line alone, and the mqueue directory has no entry. False also
 * when a check could not be opened or read: then nothing can be promised. */
static bool stem_ipc_empty(const struct stem *stem)
{
    char text[512];
    for (int i = 0; i < STEM_MQUEUE; i++) {
        if (stem->checks[i] == -1)
            return false;
        ssize_t got = RETRY(pread(stem->checks[i], text, sizeof text, 0));
        if (got <= 0)
            return false;
        char *line_end = memchr(text, '\n', (size_t)got);
        if (line_end == NULL || line_end + 1 != text + got)
            return false;
    }
    return stem->checks[STEM_MQUEUE] != -1 && io_count_entries(stem->checks[STEM_MQUEUE]) == 0;
}

/* Closes every descriptor above 3 but the stem's, which move to 4
 * (STEM_CONTROL_FD) and up: first above all of them, then down. */
static void stem_close_others(struct stem *stem)
{
    int *own[1 + STEM_CHECKS] = {&stem->control_fd};
    for (int i = 0; i < STEM_CHECKS; i++)
        own[1 + i] = &stem->checks[i];
    int highest = CHANNEL_FD;
    for (int i = 0; i < 1 + STEM_CHECKS; i++) {
        if (*own[i] > highest)
            highest = *own[i];
    }
    for (int i = 0; i < 1 + STEM_CHECKS; i++) {
        if (*own[i] == -1)
            continue;
        int moved = (int)RETRY(fcntl(*own[i], F_DUPFD_CLOEXEC, highest + 1));
        if (moved == -1)
            fail("placing the stem's descriptors");
        *own[i] = moved;
    }
    if (close_range(CHANNEL_FD + 1, (unsigned)highest, 0) == -1)
        fail("closing descriptors");
    int next = STEM_CONTROL_FD;
    for (int i = 0; i < 1 + STEM_CHECKS; i++) {
        if (*own[i] == -1)
            continue;
        if (RETRY(dup3(*own[i], next, O_CLOEXEC)) == -1)
            fail("placing the stem's descriptors");
        close(*own[i]);
        *own[i] = next++;
    }
    if (close_range((unsigned)next, ~0U, 0) == -1)
        fail("closing descriptors");
}

/* What a stem's process allocates before its executor runs (its item, its
 * run's names, its task and environment), bump-allocated in zeroed memory
 * that the stem never touches: each page it writes there is a fresh one,
 * where malloc would write to the heap it shares with the stem, scattered
 * over as many pages, each copied at its first write. Past it, malloc. */
static union {
    max_align_t align;
    /* Twice the longest item a stem is given (64 KiB: in its copy, in
     * TESSERA_ITEM), and the rest. */
    unsigned char bytes[192 * 1024];
} stem_scratch;
static size_t stem_scratch_used;

static void *stem_allocate(size_t size)
{
    size_t aligned = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    if (aligned > sizeof stem_scratch.bytes - stem_scratch_used)
        return malloc(size);
    void *memory = stem_scratch.bytes + stem_scratch_used;
    stem_scratch_used += aligned;
    return memory;
}

/* After a forked-ahead process's item: the run its microtask belongs to
 * (channel.h), which becomes the context of `stage`, the process's copy of
 * its stem's stage. */
static void stem_receive_context(struct stage *stage)
{
    struct channel_stem_context header;
    if (!read_exact(CHANNEL_FD, &header, sizeof header))
        _exit(CHILD_SETUP_FAILED);
    size_t total = 0;
    for (int i = 0; i < 4; i++)
        total += (size_t)header.lengths[i] + 1;
    char *strings = stem_allocate(total);
    if (strings == NULL)
        _exit(CHILD_SETUP_FAILED);
    const char **fields[4] = {&stage->context.job_name, &stage->context.stage_name,
                              &stage->context.run_dir, &stage->context.input_path};
    for (int i = 0; i < 4; i++) {
        if (header.lengths[i] > 0 && !read_exact(CHANNEL_FD, strings, header.lengths[i]))
            _exit(CHILD_SETUP_FAILED);
        strings[header.lengths[i]] = '\0';
        *fields[i] = strings;
        strings += header.lengths[i] + 1;
    }
    stage->context.run_id = header.run_id;
}

/* The microtask's process, just forked: with its item (the stem's
 * first), or, forked ahead, waiting for it on its channel (NULL). */
static _Noreturn void stem_child(const struct stage *stage, const char *item, size_t item_length,
                                 uint64_t index, uint32_t attempt, size_t result_limit)
{
    /* The control socket and the checks are the stem's alone. */
    if (close_range(STEM_CONTROL_FD, ~0U, 0) == -1)
        fail("closing the stem's descriptors");
    struct stage own = *stage;
    if (item == NULL) {
        char *received;
        /* The end of the channel: the stem is being dismissed. */
        if (!pool_receive(CHANNEL_FD, stem_allocate, &received, &item_length, &index, &attempt))
            _exit(0);
        item = received;
        stem_receive_context(&own);
        stage = &own;
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) == -1)
        fail("unblocking signals");
    /* A process group of its own, which the zygote kills; in the stem's
     * session, which has no terminal. A session (setsid) would cost the
     * kernel a scheduler autogroup for each microtask, 3% of its process. */
    if (setpgid(0, 0) == -1)
        fail("setpgid");
    struct tessera_task microtask;
    if (host_task_init_from(&microtask, stage, item, item_length, index, attempt, result_limit,
                            stem_allocate) == -1)
        fail("preparing the task");
    char **environment = task_environment(stage, &microtask, stem_allocate);
    if (environment == NULL)
        fail("preparing the environment");
    environ = environment;
    if (stage->limits.cpu_ms != 0) {
        uint64_t seconds = cpu_seconds(&stage->limits);
        set_limit(RLIMIT_CPU, "RLIMIT_CPU", seconds, seconds + 1);
    }
    int status = stage->executor->execute(&host_table, &microtask);
    fflush(NULL);
    (void)host_task_send_result(&microtask);
    _exit(status < 0 ? TESSERA_FAILED : status > 255 ? 255 : status);
}

static _Noreturn void stem_loop(const struct child_task *task, const struct stem *stem)
{
    const struct stage *stage = task->stage;
    /* The first microtask's item, the stem's copy of the zygote's buffer;
     * NULL once it is cleared: each next process is forked ahead of its
     * microtask and gets its item on its channel. */
    char *item = (char *)task->item;
    size_t item_length = task->item_length;
    sigset_t child_signal;
    sigemptyset(&child_signal);
    sigaddset(&child_signal, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &child_signal, NULL) == -1)
        _exit(CHILD_SETUP_FAILED);
    for (;;) {
        pid_t pid = fork();
        if (pid == 0)
            stem_child(stage, item, item_length, task->index, task->attempt, task->result_limit);
        struct channel_stem_done done = {.fork_error = pid == -1 ? errno : 0};
        /* No later microtask inherits the first one's item. */
        if (item != NULL) {
            memset(item, 0, item_length);
            item = NULL;
        }
        if (pid == -1) {
            char line[160];
            int length = snprintf(line, sizeof line,
                                  "tessera-worker: cannot start the microtask: fork: %s\n",
                                  strerror(done.fork_error));
            if (length > 0)
                (void)io_write_all(STDERR_FILENO, line, (size_t)length);
            done.status = W_EXITCODE(CHILD_SETUP_FAILED, 0);
        } else {
            while (waitpid(pid, &done.status, __WALL) == -1 && errno == EINTR)
                continue;
        }
        /* Process 1 of the namespace: with no child left (ECHILD), nobody
         * else is in it; otherwise kill(-1) reaches them all. */
        if (!(waitpid(-1, NULL, WNOHANG | __WALL) == -1 && errno == ECHILD)) {
            (void)kill(-1, SIGKILL);
            while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
                continue;
        }
        done.last = pid == -1 || !stem_ipc_empty(stem);
        struct {
            struct channel_header header;
            struct channel_stem_done done;
        } report = {{CHANNEL_STEM_DONE, sizeof(struct channel_stem_done)}, done};
        if (io_write_all(stem->control_fd, &report, sizeof report) == -1 || done.last)
            _exit(0);
    }
}

_Noreturn void child_run(const struct child_task *task)
{
    const struct stage *stage = task->stage;
    const struct sandbox_plan *plan = stage->plan;
    /* Into the microtask's cgroup first, before this process can make any
     * other; a failure is reported once stderr is the task's. */
    int cgroup_error = 0;
    if (task->join_cgroup_fd != -1 && join_cgroup(task->join_cgroup_fd) == -1)
        cgroup_error = errno;
    if (setsid() == -1)
        fail("setsid");
    if (plan == NULL) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
            fail("PR_SET_PDEATHSIG");
        if (getppid() != prepared.zygote_pid)
            _exit(CHILD_SETUP_FAILED);
    }
    place_descriptors(task);
    if (cgroup_error != 0) {
        errno = cgroup_error;
        fail("joining the microtask's cgroup");
    }
    if (plan == NULL)
        close_other_descriptors();
    reset_signals();
    if (plan != NULL)
        sandbox_enter(stage, task->cell);
    /* A stem's checks of its IPC namespace, which it has now. */
    struct stem stem = {.control_fd = task->control_fd};
    if (task->stem) {
        if (RETRY(fcntl(stem.control_fd, F_SETFL, 0)) == -1)
            fail("making the control socket blocking");
        stem_open_checks(&stem);
    }

    /* The task and its environment are built before the limits so that a
     * tight memory limit cannot make them fail (a stem's microtasks build
     * theirs as they start). */
    struct tessera_task microtask;
    char **environment = NULL;
    if (!task->stem) {
        if (host_task_init(&microtask, stage, task->item, task->item_length, task->index,
                           task->attempt, task->result_limit) == -1)
            fail("preparing the task");
        environment = task_environment(stage, &microtask, malloc);
        if (environment == NULL)
            fail("preparing the environment");
    }

    if (plan != NULL) {
        /* Before the identity switch: the zygote may trace a process of its
         * own uid without CAP_SYS_PTRACE, which it may not have, only
         * while that process has not switched away from it. */
        wait_until_traced();
        sandbox_drop_privileges(stage, task->uid);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
            fail("PR_SET_NO_NEW_PRIVS");
        /* Landlock uses descriptors the zygote opened, and its ruleset
         * needs one more, which a tight RLIMIT_NOFILE could refuse. */
        sandbox_landlock(stage);
        if (task->stem)
            stem_close_others(&stem);
        else
            close_other_descriptors();
    }
    /* setenv() copies the array before changing anything. */
    if (environment != NULL)
        environ = environment;
    apply_limits(&stage->limits, task->memory_by_cgroup, task->pooled, task->stem);
    if (plan == NULL && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
        fail("PR_SET_NO_NEW_PRIVS");
    if (plan != NULL)
        sandbox_seccomp(stage);
    else
        wait_until_traced();

    if (task->stem)
        stem_loop(task, &stem);
    if (task->pooled)
        pool_loop(task, &microtask);

    int status = stage->executor->execute(&host_table, &microtask);

    fflush(NULL);
    /* A result that cannot be sent is lost with the zygote that would have
     * received it. */
    (void)host_task_send_result(&microtask);
    _exit(status < 0 ? TESSERA_FAILED : status > 255 ? 255 : status);
}
