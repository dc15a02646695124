/*
 * zygote.c - the worker's event loop: frames from the daemon, a forked
 * child per microtask, and the supervision of those children.
 *
 * The zygote is single-threaded and never blocks except in poll(). One
 * turn of the loop:
 *   1. reads what the children wrote (stdout, stderr and the channel of
 *      channel.h), keeping each stream up to the stage's output limit (or,
 *      for a stage whose result is its standard output, stdout up to the
 *      result limit) and killing a task that writes more;
 *   2. reaps children that exited (SIGCHLD arrives on a signalfd), kills
 *      what is left of their process group (and of their cgroup), collects
 *      the last output and queues DONE;
 *   3. reads frames from the daemon and handles a bounded number of them,
 *      so a burst of TASK frames alternates with reaping;
 *   4. forwards progress (at most one PROGRESS per task per 100 ms),
 *      tries again to remove the cgroups of ended tasks that were still
 *      busy (cgroup.h), and writes queued frames without blocking; what
 *      the socket does not take now is sent when poll() reports it
 *      writable.
 *
 * Per microtask the zygote makes two pipes and a socket pair (the channel,
 * channel.h) and forks (or, for a sandboxed stage, clones into new
 * namespaces: sandbox.h, and into a cgroup of its own when the daemon
 * configured a cgroup directory: cgroup.h), attaches to the new process
 * with ptrace (trace.h) and only then lets it run its executor; task
 * records and their buffers are recycled, so a steady stream of tasks
 * allocates nothing. What a task is reported to have died of comes from
 * the kernel (wait4, and the signals and memory ptrace shows), never from
 * what the task writes.
 *
 * Nothing the zygote holds for the daemon or for other tasks is inherited
 * by a child: frames, output and stage definitions live in wiped memory
 * (wiped.h), and a child is lent only its own stage's definition and a
 * copy of its own item.
 *
 * A task's pid and process group are the ones the zygote sees, also when
 * the child is pid 1 of a pid namespace of its own: killpg() and wait4()
 * work on them as on any child. When such a child exits, the kernel kills
 * and reaps the rest of its namespace before the zygote can reap it.
 */
#define _GNU_SOURCE
#include "zygote.h"

#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "cell.h"
#include "cgroup.h"
#include "channel.h"
#include "child.h"
#include "io.h"
#include "loader.h"
#include "sandbox.h"
#include "stage.h"
#include "trace.h"
#include "wiped.h"
#include "wire.h"

#define DAEMON_FD STDIN_FILENO

/* The most output kept per stream, and the longest result, whatever the
 * stage allows: three of them and DONE's other fields fit in one frame. */
#define OUTPUT_CAP ((size_t)TW_OUTPUT_CAP)
_Static_assert(3 * (uint64_t)OUTPUT_CAP + 4096 < TW_MAX_FRAME, "DONE must fit in a frame");

/* Bytes read from a pipe or the socket in one call. */
#define READ_CHUNK 65536
/* Frames from the daemon handled per turn of the loop. */
#define FRAMES_PER_TURN 64
/* The shortest interval between two PROGRESS frames of one task. */
#define PROGRESS_INTERVAL_NS 100000000u
/* STARTED, which only tells the daemon the pid to show, waits this long
 * for a frame to go out with: a microtask that ends sooner is told
 * started and done in one write, one wake-up of the daemon fewer. */
#define STARTED_DELAY_NS 10000000u
/* While this much output waits for the daemon, no new frames are read. */
#define OUTPUT_HIGH_WATER ((size_t)32 << 20)
/* Buffers larger than this are given back when they fall empty, and at most
 * this many finished task records are kept for reuse: memory the zygote
 * holds on to is memory every fork() has to map into the child. */
#define KEEP_CAPACITY ((size_t)64 << 10)
#define TASKS_KEPT 64
/* Allocations from this size up get their own mapping, so that freeing a
 * large output buffer gives the memory back to the system at once. */
#define MMAP_THRESHOLD (128 * 1024)
/* Reads from each pipe after a child is reaped: enough to empty the largest
 * pipe an unprivileged process can make (1 MiB), yet bounded in case an
 * escaped descendant keeps writing. */
#define DRAIN_READS 32

enum stream { STREAM_STDOUT, STREAM_STDERR, STREAM_CHANNEL, STREAM_COUNT };
/* A stem's control socket, in the poll set (it is the stem's, not a task's
 * stream). */
#define STREAM_CONTROL STREAM_COUNT

struct task {
    uint64_t token;
    pid_t pid;
    /* Not reaped yet, so `pid` still names the task's process group. */
    bool alive;
    size_t running_index;
    uint64_t started_ns;
    size_t limit; /* bytes kept per stream (the `output` limit) */
    size_t result_limit;
    /* The stage's result is its standard output (TW_RESULT_STDOUT):
     * captured[STREAM_STDOUT] is sent as the result, up to result_limit. */
    bool stdout_is_result;
    uint32_t flags;
    struct trace trace;
    int fds[STREAM_COUNT]; /* read ends; -1 once closed */
    int cgroup_fd; /* the task's cgroup (cgroup.h), or -1 */
    struct cell *cell; /* the cell it joined (cell.h), or NULL */
    /* isolation: pooled: the pooled process it runs in (whose channel
     * fds[STREAM_CHANNEL] is, borrowed), and its CHANNEL_POOL_DONE. */
    struct pool *pool;
    bool pool_done;
    bool pool_last;
    int pool_exit_code;
    uint64_t pool_cpu_us;
    uint64_t pool_max_rss_kib;
    /* A stem's microtask: its process was let go (trace_adopt()), and
     * ended, with this wait status and rusage; CHANNEL_STEM_DONE's status
     * is in pool_exit_code then. */
    bool stem_started;
    bool stem_ended;
    int stem_status;
    struct rusage stem_usage;
    struct buf captured[2]; /* stdout, stderr */
    struct buf channel;     /* channel bytes not parsed yet */
    struct buf result;
    struct buf error_line; /* the executor's last error (CHANNEL_ERROR) */
    bool started_pending; /* STARTED waits (STARTED_DELAY_NS) */
    bool progress_sent;
    bool progress_pending; /* a fraction waits for the interval to pass */
    double progress_value;
    uint64_t progress_sent_ns;
    struct task *next_free;
};

/* A microtask handed out ahead for a pooled process (TW_TASK_AHEAD), held
 * until that process may run it. */
struct queued_task {
    struct queued_task *next;
    uint64_t token, index;
    uint32_t stage_id, uid, attempt, item_length;
    size_t limit, result_limit;
    char item[]; /* item_length bytes */
};

/* A pooled process (isolation: pooled, child.c's pool_loop): sandboxed
 * once, it runs microtasks of one stage, with one uid, one at a time. */
struct pool {
    pid_t pid;
    uint32_t stage_id;
    const struct stage *stage; /* NULL once the stage is forgotten */
    uint32_t uid;
    int channel_fd;  /* the zygote's end; -1 once closed */
    int out_fd, err_fd; /* read ends of its standard output and error */
    struct trace trace; /* between microtasks; a running one has a copy */
    struct cell *cell;
    struct task *task; /* the microtask it runs, or NULL */
    /* A pooled process's next microtasks, handed out ahead (TW_TASK_AHEAD),
     * first to run first: held here, and each sent to the process once it
     * has said the one it runs ended and its output is read, so that each
     * microtask's output is its own. */
    struct queued_task *queued, *queued_last;
    bool retiring;     /* it runs no more microtasks; kept until reaped */
    /* A stem (isolation: process, child.c's stem_loop): it forks each
     * microtask's process, and reports on its control socket. */
    bool stem;
    int control_fd; /* the zygote's end; -1 once closed (or not a stem) */
    /* The process it forked ahead of its next microtask, once the zygote
     * saw the fork (0 before), and whether it was let go (trace_adopt()). */
    pid_t spare;
    bool spare_started;
    struct buf control; /* control bytes not parsed yet */
    /* A stem whose stage was forgotten (it ended) stays, warm, for the
     * same stage of a later run of the same job (stage_same_definition()),
     * which the daemon tends to give the same uids: it keeps that stage's
     * definition, job and stage name, in one wiped allocation (wiped.h),
     * and when it was last busy. */
    struct warm_key {
        unsigned char *memory; /* NULL: not warm */
        size_t capacity;
        size_t definition_length;
        const char *job_name, *stage_name;
        const tessera_executor *executor;
    } warm;
    uint64_t idle_since_ns;
};

/* A warm stem idle this long is dismissed: it holds a cell and two
 * processes of a uid that the daemon may lend to another stage. */
#define STEM_WARM_NS (30 * 1000000000ULL)

/* Processes a stem forked that stopped before the zygote saw the fork
 * (trace.h): held until then. */
#define HELD_MAX 64

/* Items longer than this go to a process of their own: a pooled process
 * gets its item through its socket, which must take it without blocking. */
#define POOL_ITEM_MAX 65536

/* Which task and stream a pollfd entry stands for. */
struct poll_target {
    struct task *task;
    enum stream stream;
};

static struct {
    struct plugin_set plugins;
    struct stage_table stages;
    int signal_fd;
    struct buf input;
    struct buf output;
    size_t output_sent; /* bytes at the start of `output` already sent */
    /* Tasks not reaped yet, and their pids in a parallel array that a reap
     * scans: a handful of tasks per worker makes that the cheapest map. */
    struct task **running;
    pid_t *running_pids;
    size_t running_count;
    size_t running_capacity;
    struct task *free_tasks;
    size_t free_task_count;
    size_t progress_pending_count;
    size_t started_pending_count;
    struct pollfd *poll_fds;
    struct poll_target *poll_targets;
    size_t poll_capacity;
    uint64_t now_ns; /* when the current turn of the loop started */
    bool configured; /* a CONFIG frame arrived */
    /* What children write is read into this (wiped) buffer... */
    unsigned char *scratch;
    size_t scratch_capacity;
    /* ...and the next child's item is copied into this ordinary one, the
     * only copy of it the child inherits; it is cleared after the fork. */
    char *item;
    size_t item_capacity;
    /* The stage definition lent to the children (lend()), or NULL. */
    const struct stage *lent;
    struct pool **pools;
    size_t pool_count;
    size_t pool_capacity;
    pid_t held[HELD_MAX];
    size_t held_count;
    /* ptrace was refused: no more stems, whose microtasks would go
     * untraced. */
    bool no_stems;
} zygote;

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t timeval_us(struct timeval value)
{
    return (uint64_t)value.tv_sec * 1000000u + (uint64_t)value.tv_usec;
}

/* Ending the zygote: SIGKILL every task's process group and cgroup, reap
 * the children, remove the cgroups, exit. Used on EOF from the daemon and
 * on fatal errors alike. */

static void signal_task(struct task *task, int signo);
static void queued_start(struct queued_task *queued, bool ahead);

static _Noreturn void shut_down(int status)
{
    for (size_t i = 0; i < zygote.running_count; i++) {
        if (zygote.running[i]->cgroup_fd != -1)
            cgroup_task_kill(zygote.running[i]->cgroup_fd);
        signal_task(zygote.running[i], SIGKILL);
    }
    for (size_t i = 0; i < zygote.running_count; i++) {
        if (RETRY(waitpid(zygote.running_pids[i], NULL, 0)) == -1)
            worker_log("reaping pid %ld: %s", (long)zygote.running_pids[i], strerror(errno));
        struct task *task = zygote.running[i];
        if (task->cgroup_fd != -1)
            (void)cgroup_task_finish(task->token, task->cgroup_fd);
    }
    cgroup_shut_down();
    /* What the cgroups held has exited by now; as the subreaper of those
     * processes, the zygote releases them instead of leaving them to init
     * (a zombie still counts against its uid's RLIMIT_NPROC). */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        continue;
    exit(status);
}

static _Noreturn void malformed(const char *what)
{
    worker_log("malformed %s from the daemon; exiting", what);
    shut_down(EXIT_FAILURE);
}

/* Frames to the daemon. They are queued in `zygote.output` and written by
 * flush_output(). */

static void send_hello(char **problems, size_t count)
{
    size_t start = wire_begin_frame(&zygote.output, TW_MSG_HELLO);
    wire_put_u32(&zygote.output, TW_PROTOCOL_VERSION);
    wire_put_u32(&zygote.output, (uint32_t)getpid());
    wire_put_u32(&zygote.output, (uint32_t)count);
    for (size_t i = 0; i < count; i++)
        wire_put_str(&zygote.output, problems[i], strlen(problems[i]));
    wire_end_frame(&zygote.output, start);
}

/* A task's held STARTED, now: it goes before any other frame of the task. */
static void started_now(struct task *task)
{
    if (!task->started_pending)
        return;
    task->started_pending = false;
    zygote.started_pending_count--;
    size_t start = wire_begin_frame(&zygote.output, TW_MSG_STARTED);
    wire_put_u64(&zygote.output, task->token);
    wire_put_u32(&zygote.output, (uint32_t)task->pid);
    wire_end_frame(&zygote.output, start);
}

/* STARTED is held until STARTED_DELAY_NS from now or until another frame
 * goes to the daemon, whichever comes first. */
static void send_started(struct task *task)
{
    if (!task->started_pending) {
        task->started_pending = true;
        zygote.started_pending_count++;
    }
}

/* OUTPUT: what a running task has written from the offsets asked for. */
static void send_output(struct task *task, const uint64_t offsets[2], uint32_t max)
{
    started_now(task);
    size_t start = wire_begin_frame(&zygote.output, TW_MSG_OUTPUT);
    wire_put_u64(&zygote.output, task->token);
    wire_put_u64(&zygote.output, offsets[STREAM_STDOUT]);
    wire_put_u64(&zygote.output, offsets[STREAM_STDERR]);
    for (int stream = 0; stream < 2; stream++) {
        const struct buf *kept = &task->captured[stream];
        size_t from = offsets[stream] < kept->length ? (size_t)offsets[stream] : kept->length;
        size_t length = kept->length - from;
        if (length > max)
            length = max;
        wire_put_str(&zygote.output, length > 0 ? (const void *)(kept->data + from) : "", length);
    }
    wire_end_frame(&zygote.output, start);
}

static void send_progress(struct task *task, double fraction)
{
    started_now(task);
    size_t start = wire_begin_frame(&zygote.output, TW_MSG_PROGRESS);
    wire_put_u64(&zygote.output, task->token);
    wire_put_f64(&zygote.output, fraction);
    wire_end_frame(&zygote.output, start);
    task->progress_sent = true;
    task->progress_sent_ns = zygote.now_ns;
    if (task->progress_pending) {
        task->progress_pending = false;
        zygote.progress_pending_count--;
    }
}

/* Queues DONE for a task whose child ended with wait `status`. */
static void send_done(struct task *task, int status, const struct rusage *usage,
                      uint64_t wall_us)
{
    started_now(task);
    struct buf *out = &zygote.output;
    bool signaled = WIFSIGNALED(status);
    static const struct buf none;
    const struct buf *result = &task->result;
    const struct buf *stdout_text = &task->captured[STREAM_STDOUT];
    uint32_t flags = task->flags;
    /* Standard output as the result is sent however the task ended, as
     * its output would be, unless it went past the limit. */
    if (task->stdout_is_result) {
        result = flags & TW_FLAG_RESULT_LIMIT ? &none : stdout_text;
        stdout_text = &none;
        if (!(flags & TW_FLAG_RESULT_LIMIT))
            flags |= TW_FLAG_HAS_RESULT;
    }
    size_t start = wire_begin_frame(out, TW_MSG_DONE);
    wire_put_u64(out, task->token);
    wire_put_u8(out, signaled ? TW_END_SIGNALED : TW_END_EXITED);
    wire_put_i32(out, signaled ? 0 : WEXITSTATUS(status));
    wire_put_i32(out, signaled ? WTERMSIG(status) : 0);
    wire_put_u64(out, timeval_us(usage->ru_utime));
    wire_put_u64(out, timeval_us(usage->ru_stime));
    wire_put_u64(out, (uint64_t)usage->ru_maxrss);
    wire_put_u64(out, wall_us);
    wire_put_u64(out, task->trace.vm_peak);
    wire_put_u32(out, flags);
    wire_put_str(out, result->data, result->length);
    wire_put_str(out, stdout_text->data, stdout_text->length);
    wire_put_str(out, task->captured[STREAM_STDERR].data, task->captured[STREAM_STDERR].length);
    wire_put_str(out, "", 0);
    wire_put_str(out, task->error_line.data, task->error_line.length);
    wire_end_frame(out, start);
}

/* Queues DONE for a task that never ran, with the reason. */
__attribute__((format(printf, 2, 3))) static void send_failed(uint64_t token,
                                                              const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    char *error = xvasprintf(format, arguments);
    va_end(arguments);
    struct buf *out = &zygote.output;
    size_t start = wire_begin_frame(out, TW_MSG_DONE);
    wire_put_u64(out, token);
    wire_put_u8(out, TW_END_FAILED);
    wire_put_i32(out, 0);
    wire_put_i32(out, 0);
    for (int i = 0; i < 5; i++)
        wire_put_u64(out, 0); /* cpu times, max rss, wall time, peak */
    wire_put_u32(out, 0);
    for (int i = 0; i < 3; i++)
        wire_put_str(out, "", 0); /* result, stdout, stderr */
    wire_put_str(out, error, strlen(error));
    wire_put_str(out, "", 0); /* error line */
    wire_end_frame(out, start);
    free(error);
}

static size_t output_waiting(void)
{
    return zygote.output.length - zygote.output_sent;
}

/* Writes as much queued output as the socket takes without blocking. */
static void flush_output(void)
{
    while (output_waiting() > 0) {
        ssize_t sent = RETRY(send(DAEMON_FD, zygote.output.data + zygote.output_sent,
                                  output_waiting(), MSG_DONTWAIT | MSG_NOSIGNAL));
        if (sent == -1) {
            if (errno == EAGAIN)
                break;
            if (errno == EPIPE || errno == ECONNRESET) {
                worker_log("the daemon closed the connection");
                shut_down(EXIT_SUCCESS);
            }
            worker_log("writing to the daemon: %s", strerror(errno));
            shut_down(EXIT_FAILURE);
        }
        zygote.output_sent += (size_t)sent;
    }
    if (output_waiting() == 0) {
        buf_reset(&zygote.output, KEEP_CAPACITY);
        zygote.output_sent = 0;
    } else if (zygote.output_sent >= zygote.output.length / 2) {
        buf_consume(&zygote.output, zygote.output_sent);
        zygote.output_sent = 0;
    }
}

/* Task records. */

static struct task *task_acquire(void)
{
    struct task *task = zygote.free_tasks;
    if (task == NULL)
        return xcalloc(1, sizeof *task);
    zygote.free_tasks = task->next_free;
    zygote.free_task_count--;
    return task;
}

/* Keeps a finished task's record (and its buffers, unless they grew large)
 * for the next task, or frees it when enough records are kept already. */
static void task_release(struct task *task)
{
    size_t keep = zygote.free_task_count < TASKS_KEPT ? KEEP_CAPACITY : 0;
    for (int s = 0; s < 2; s++)
        buf_reset(&task->captured[s], keep);
    buf_reset(&task->channel, keep);
    buf_reset(&task->result, keep);
    buf_reset(&task->error_line, keep);
    if (keep == 0) {
        free(task);
        return;
    }
    task->next_free = zygote.free_tasks;
    zygote.free_tasks = task;
    zygote.free_task_count++;
}

static void running_add(struct task *task)
{
    if (zygote.running_count == zygote.running_capacity) {
        size_t capacity = zygote.running_capacity ? zygote.running_capacity * 2 : 64;
        zygote.running = xrealloc(zygote.running, capacity * sizeof *zygote.running);
        zygote.running_pids = xrealloc(zygote.running_pids, capacity * sizeof(pid_t));
        zygote.running_capacity = capacity;
    }
    task->running_index = zygote.running_count++;
    zygote.running[task->running_index] = task;
    zygote.running_pids[task->running_index] = task->pid;
}

static void running_remove(struct task *task)
{
    if (task->started_pending) {
        task->started_pending = false;
        zygote.started_pending_count--;
    }
    size_t last = --zygote.running_count;
    zygote.running[task->running_index] = zygote.running[last];
    zygote.running_pids[task->running_index] = zygote.running_pids[last];
    zygote.running[task->running_index]->running_index = task->running_index;
}

static struct task *running_by_pid(pid_t pid)
{
    for (size_t i = 0; i < zygote.running_count; i++) {
        if (zygote.running_pids[i] == pid)
            return zygote.running[i];
    }
    return NULL;
}

/* Signals everything in a task's process group. A child that has not
 * called setsid() yet has no group of its own, nor any descendants, so the
 * signal goes to the child itself. Signalling a reaped task could reach
 * whoever reused its pid, so that is never done. A child that is pid 1 of
 * its own pid namespace gets SIGKILL always, but other signals only when
 * its executor installed a handler for them (the kernel protects a
 * namespace's init from signals it does not handle); its descendants in
 * the group get them as usual, and die with it anyway. */
static void signal_task(struct task *task, int signo)
{
    if (!task->alive)
        return;
    if (task->pid == 0) {
        /* A stem's microtask not forked yet: the daemon only ends
         * microtasks (SIGTERM, then SIGKILL), and it has run nothing, so
         * its stem is ended, and the microtask is reported as killed by
         * the signal. */
        if (task->pool->trace.fatal_signal == 0)
            task->pool->trace.fatal_signal = signo;
        if (kill(task->pool->pid, SIGKILL) == -1 && errno != ESRCH)
            worker_log("signalling pid %ld: %s", (long)task->pool->pid, strerror(errno));
        return;
    }
    if (killpg(task->pid, signo) == 0)
        return;
    if (errno != ESRCH || kill(task->pid, signo) == -1)
        worker_log("signalling pid %ld: %s", (long)task->pid, strerror(errno));
}

static void close_stream(struct task *task, enum stream stream)
{
    if (task->fds[stream] != -1) {
        close(task->fds[stream]);
        task->fds[stream] = -1;
        /* A pooled task's streams are its pooled process's: closed once,
         * for both. */
        if (task->pool != NULL) {
            int *owned[] = {&task->pool->out_fd, &task->pool->err_fd, &task->pool->channel_fd};
            *owned[stream] = -1;
        }
    }
}

/* Starting a microtask. */

/* Makes `stage` the one definition the next fork copies (wiped.h). It stays
 * lent until a microtask of another stage is forked: each madvise() splits
 * or merges the mapping and flushes the TLB, which every fork paid twice
 * when it was lent for one fork at a time. A child sees its own stage's
 * definition either way, and no other. */
static void lend(const struct stage *stage)
{
    if (zygote.lent == stage)
        return;
    if (zygote.lent != NULL)
        wiped_lend((void *)zygote.lent, zygote.lent->allocation, false);
    wiped_lend((void *)stage, stage->allocation, true);
    zygote.lent = stage;
}

/* Tells an idle pooled process to end (it reads the end of its channel and
 * exits), or ends a stem. */
static void pool_dismiss(struct pool *pool)
{
    if (pool->stem) {
        /* A stem waits for no word: it has forked its next process. */
        pool->retiring = true;
        (void)kill(pool->pid, SIGKILL);
        return;
    }
    if (pool->channel_fd != -1) {
        close(pool->channel_fd);
        pool->channel_fd = -1;
    }
}

/* A stem's stage is forgotten: it keeps what it needs to be matched. */
static void warm_keep(struct pool *pool)
{
    const struct stage *stage = pool->stage;
    size_t job = strlen(stage->context.job_name) + 1;
    size_t name = strlen(stage->context.stage_name) + 1;
    struct warm_key *warm = &pool->warm;
    warm->memory = wiped_alloc(stage->definition_length + job + name, &warm->capacity);
    memcpy(warm->memory, stage->definition, stage->definition_length);
    warm->definition_length = stage->definition_length;
    warm->job_name = memcpy(warm->memory + stage->definition_length, stage->context.job_name, job);
    warm->stage_name = memcpy(warm->memory + stage->definition_length + job, stage->context.stage_name, name);
    warm->executor = stage->executor;
    pool->stage = NULL;
    pool->idle_since_ns = monotonic_ns();
}

static void warm_forget(struct pool *pool)
{
    if (pool->warm.memory != NULL)
        wiped_free(pool->warm.memory, pool->warm.capacity);
    pool->warm = (struct warm_key){0};
}

/* Whether `pool` is a warm stem that may serve `stage`. */
static bool warm_serves(const struct pool *pool, const struct stage *stage)
{
    const struct warm_key *warm = &pool->warm;
    return pool->stage == NULL && warm->memory != NULL && warm->executor == stage->executor &&
           stage_same_definition(stage, warm->memory, warm->definition_length, warm->job_name,
                                 warm->stage_name);
}

/* Ends a stem at once and gives its cell back (its processes, killed, are
 * reaped later). */
static void stem_dismiss_now(struct pool *pool)
{
    pool->retiring = true;
    pool_dismiss(pool);
    if (pool->cell != NULL) {
        cell_release(pool->cell);
        pool->cell = NULL;
    }
}

/* Before a microtask of `stage` runs as `uid`: the warm stems of that uid
 * that cannot serve it make way (they hold the uid's cell, and their
 * processes run as the uid, which is the new microtask's now). */
static void warm_make_way(const struct stage *stage, uint32_t uid)
{
    for (size_t i = 0; i < zygote.pool_count; i++) {
        struct pool *pool = zygote.pools[i];
        if (pool->stem && !pool->retiring && pool->warm.memory != NULL && pool->uid == uid &&
            pool->task == NULL && !warm_serves(pool, stage))
            stem_dismiss_now(pool);
    }
}

/* Dismisses the warm stems idle for STEM_WARM_NS; returns the milliseconds
 * from `now` until the next one is due, or -1 when none is warm. */
static int warm_expire(uint64_t now)
{
    uint64_t soonest = UINT64_MAX;
    for (size_t i = 0; i < zygote.pool_count; i++) {
        struct pool *pool = zygote.pools[i];
        if (!pool->stem || pool->retiring || pool->warm.memory == NULL || pool->task != NULL)
            continue;
        uint64_t due = pool->idle_since_ns + STEM_WARM_NS;
        if (due <= now)
            stem_dismiss_now(pool);
        else if (due < soonest)
            soonest = due;
    }
    return soonest == UINT64_MAX ? -1 : (int)((soonest - now + 999999) / 1000000);
}

/* The microtasks held for a pooled process, first first, taken from it. */
static struct queued_task *queue_detach(struct pool *pool)
{
    struct queued_task *queued = pool->queued;
    pool->queued = pool->queued_last = NULL;
    return queued;
}

/* Held microtasks whose pooled process cannot run them: the first starts
 * another one of the stage, the others wait for it (queued_start()). */
static void queue_restart(struct queued_task *queued)
{
    for (bool first = true; queued != NULL; first = false) {
        struct queued_task *next = queued->next;
        queued_start(queued, !first);
        queued = next;
    }
}

/* Before the definition of `id` is freed or replaced. */
static void stage_going(uint32_t id)
{
    if (zygote.lent != NULL && zygote.lent->id == id)
        zygote.lent = NULL;
    /* Its pooled processes end: an idle one when its channel closes (it
     * reads the end of it), a busy one after its microtask. */
    for (size_t i = 0; i < zygote.pool_count; i++) {
        struct pool *pool = zygote.pools[i];
        if (pool->stage == NULL || pool->stage_id != id)
            continue;
        if (pool->stem && !pool->retiring) {
            /* It stays, warm (a busy one, after its microtask). */
            warm_keep(pool);
            continue;
        }
        pool->stage = NULL;
        pool->retiring = true;
        for (struct queued_task *queued = queue_detach(pool), *next; queued != NULL; queued = next) {
            next = queued->next;
            send_failed(queued->token, "stage %u was forgotten before its microtask started", id);
            free(queued);
        }
        if (pool->task == NULL)
            pool_dismiss(pool);
    }
}

static struct pool *pool_by_pid(pid_t pid)
{
    for (size_t i = 0; i < zygote.pool_count; i++) {
        if (zygote.pools[i]->pid == pid)
            return zygote.pools[i];
    }
    return NULL;
}

/* After it was reaped. The microtasks handed to it ahead go to another
 * pooled process of the stage: the first starts one, the others wait for
 * it. */
static void pool_remove(struct pool *pool)
{
    struct queued_task *queued = queue_detach(pool);
    int fds[] = {pool->out_fd, pool->err_fd, pool->channel_fd, pool->control_fd};
    for (int i = 0; i < 4; i++) {
        if (fds[i] != -1)
            close(fds[i]);
    }
    buf_reset(&pool->control, 0);
    warm_forget(pool);
    if (pool->cell != NULL)
        cell_release(pool->cell);
    for (size_t i = 0; i < zygote.pool_count; i++) {
        if (zygote.pools[i] == pool) {
            zygote.pools[i] = zygote.pools[--zygote.pool_count];
            break;
        }
    }
    free(pool);
    queue_restart(queued);
}

static void task_begin(struct task *task, uint64_t token, pid_t pid, const struct stage *stage,
                       size_t limit, size_t result_limit, uint64_t started_ns)
{
    task->token = token;
    task->pid = pid;
    task->alive = true;
    task->started_ns = started_ns;
    task->limit = limit;
    task->result_limit = result_limit;
    task->stdout_is_result = stage->result.source == TW_RESULT_STDOUT;
    task->flags = 0;
    task->progress_sent = false;
    task->progress_pending = false;
    task->pool = NULL;
    task->pool_done = false;
    task->stem_started = false;
    task->stem_ended = false;
}

/* The bytes kept of a stream or a result that may have `wanted` (0: the cap). */
static size_t capped(uint64_t wanted)
{
    return wanted == 0 || wanted > OUTPUT_CAP ? OUTPUT_CAP : (size_t)wanted;
}

static void close_streams(int pipes[STREAM_COUNT][2], int count)
{
    for (int s = 0; s < count; s++) {
        close(pipes[s][0]);
        close(pipes[s][1]);
    }
}

/* A microtask's standard output and error pipes and its channel, a socket
 * pair so that the zygote can answer on it; both ends non-blocking and
 * close-on-exec (the child makes its ends blocking again after moving
 * them into place). False, with the reason sent, when they cannot be made. */
static bool make_streams(uint64_t token, int pipes[STREAM_COUNT][2])
{
    int made = 0;
    while (made < STREAM_CHANNEL && pipe2(pipes[made], O_CLOEXEC | O_NONBLOCK) == 0)
        made++;
    if (made == STREAM_CHANNEL &&
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pipes[made]) == 0)
        made++;
    if (made == STREAM_COUNT)
        return true;
    int error = errno;
    close_streams(pipes, made);
    send_failed(token, "cannot create pipes: %s", strerror(error));
    return false;
}

/* What a child is forked with, for one microtask of `stage`. */
static struct child_task task_spec(const struct stage *stage, size_t item_length, uint64_t index,
                                   uint32_t attempt, size_t result_limit, uint32_t uid)
{
    return (struct child_task){
        .stage = stage,
        .item_length = item_length,
        .index = index,
        .attempt = attempt,
        .result_limit = result_limit,
        .uid = uid,
        .control_fd = -1,
    };
}

/* Creates the process of `spec` (a microtask's, or a pooled one) in
 * `cgroup_fd` (or none: -1), with the write ends of `pipes`, which are
 * closed here: `item` is copied into the one buffer the child inherits,
 * the stage lent to it (lend()) and a cell acquired for it when it can
 * join one (*cell, or NULL). Returns the pid, or -1 with the reason sent,
 * the read ends closed and the cell given back. */
static pid_t spawn(uint64_t token, struct child_task *spec, const char *item,
                   int pipes[STREAM_COUNT][2], int cgroup_fd, struct cell **cell)
{
    const struct stage *stage = spec->stage;
    if (zygote.item_capacity < spec->item_length + 1) {
        zygote.item_capacity = spec->item_length + 1;
        free(zygote.item);
        zygote.item = xmalloc(zygote.item_capacity);
    }
    memcpy(zygote.item, item, spec->item_length);
    zygote.item[spec->item_length] = '\0';
    spec->item = zygote.item;
    spec->stdout_fd = pipes[STREAM_STDOUT][1];
    spec->stderr_fd = pipes[STREAM_STDERR][1];
    spec->channel_fd = pipes[STREAM_CHANNEL][1];
    spec->join_cgroup_fd = -1;
    lend(stage);
    if (*cell == NULL && cell_possible(stage, spec->uid))
        *cell = cell_acquire(stage, spec->uid);
    spec->cell = *cell;
    pid_t pid = sandbox_clone(stage->plan, cgroup_fd, &spec->join_cgroup_fd);
    if (pid == 0)
        child_run(spec);
    int fork_error = errno;
    memset(zygote.item, 0, spec->item_length);
    for (int s = 0; s < STREAM_COUNT; s++)
        close(pipes[s][1]);
    if (pid != -1)
        return pid;
    if (*cell != NULL)
        cell_release(*cell);
    for (int s = 0; s < STREAM_COUNT; s++)
        close(pipes[s][0]);
    if (cgroup_fd != -1) {
        char *path = cgroup_task_path(token);
        send_failed(token, "cannot create the microtask's process in its cgroup %s: %s", path,
                    strerror(fork_error));
        free(path);
        (void)cgroup_task_finish(token, cgroup_fd);
    } else if (stage->plan != NULL && stage->plan->clone_flags != 0) {
        send_failed(token, "cannot create the microtask's namespaces: clone: %s",
                    strerror(fork_error));
    } else {
        send_failed(token, "fork failed: %s", strerror(fork_error));
    }
    return -1;
}

/* Traced now (or never to be): the child may run its executor. A fresh
 * socket takes one byte without blocking. */
static void send_go(int channel_fd, pid_t pid)
{
    const char go = CHANNEL_GO;
    if (RETRY(send(channel_fd, &go, 1, MSG_NOSIGNAL)) != 1)
        worker_log("cannot start process %ld: %s", (long)pid, strerror(errno));
}

/* The record of a new pooled process or stem, with the read ends of its
 * streams. */
static struct pool *pool_add(pid_t pid, const struct stage *stage, uint32_t uid,
                             int pipes[STREAM_COUNT][2], struct cell *cell)
{
    struct pool *pool = xcalloc(1, sizeof *pool);
    pool->pid = pid;
    pool->stage_id = stage->id;
    pool->stage = stage;
    pool->uid = uid;
    pool->out_fd = pipes[STREAM_STDOUT][0];
    pool->err_fd = pipes[STREAM_STDERR][0];
    pool->channel_fd = pipes[STREAM_CHANNEL][0];
    pool->control_fd = -1;
    pool->cell = cell;
    if (zygote.pool_count == zygote.pool_capacity) {
        zygote.pool_capacity = zygote.pool_capacity ? zygote.pool_capacity * 2 : 16;
        zygote.pools = xrealloc(zygote.pools, zygote.pool_capacity * sizeof *zygote.pools);
    }
    zygote.pools[zygote.pool_count++] = pool;
    return pool;
}

/* The record of a microtask that runs in a pooled process or a stem's
 * process (pid 0: not forked yet), whose streams are the pool's. */
static struct task *pool_task(struct pool *pool, uint64_t token, pid_t pid, size_t limit,
                              size_t result_limit)
{
    struct task *task = task_acquire();
    task_begin(task, token, pid, pool->stage, limit, result_limit, monotonic_ns());
    task->fds[STREAM_STDOUT] = pool->out_fd;
    task->fds[STREAM_STDERR] = pool->err_fd;
    task->fds[STREAM_CHANNEL] = pool->channel_fd;
    task->cgroup_fd = -1;
    task->cell = NULL;
    task->pool = pool;
    pool->task = task;
    running_add(task);
    return task;
}

/* An idle pooled process (or stem, also a warm one that can serve the
 * stage, which becomes the stage's) of the stage and uid that can take a
 * microtask on its channel, or NULL. */
static struct pool *pool_idle(const struct stage *stage, uint32_t uid, bool stem)
{
    for (size_t i = 0; i < zygote.pool_count; i++) {
        struct pool *pool = zygote.pools[i];
        if (pool->stem != stem || pool->uid != uid || pool->task != NULL || pool->retiring ||
            pool->channel_fd == -1 || (stem && pool->control_fd == -1))
            continue;
        if (pool->stage == stage)
            return pool;
        if (stem && warm_serves(pool, stage)) {
            if (pool->cell != NULL && cell_stale(pool->cell)) {
                stem_dismiss_now(pool);
                continue;
            }
            /* A warm stem: the stage's now. */
            warm_forget(pool);
            pool->stage = stage;
            pool->stage_id = stage->id;
            return pool;
        }
    }
    return NULL;
}

/* Hands a microtask to an idle pooled process or stem on its channel: the
 * item follows the request on the stream, and for a stem the context of
 * the microtask's run (channel.h); an idle process's socket is empty, and
 * takes it all at once. */
static bool pool_send(const struct pool *pool, const struct stage *stage, uint64_t index,
                      uint32_t attempt, const char *item, uint32_t item_length)
{
    struct channel_pool_task request = {.index = index, .attempt = attempt,
                                        .item_length = item_length};
    const struct stage_context *context = &stage->context;
    const char *strings[4] = {context->job_name, context->stage_name, context->run_dir,
                              context->input_path};
    struct channel_stem_context run = {.run_id = context->run_id};
    struct iovec iov[7] = {{&request, sizeof request}, {(void *)item, item_length}};
    size_t count = 2;
    size_t total = sizeof request + item_length;
    if (pool->stem) {
        iov[count++] = (struct iovec){&run, sizeof run};
        for (int i = 0; i < 4; i++) {
            run.lengths[i] = (uint32_t)strlen(strings[i]);
            iov[count++] = (struct iovec){(void *)strings[i], run.lengths[i]};
            total += run.lengths[i];
        }
        total += sizeof run;
    }
    struct msghdr message = {.msg_iov = iov, .msg_iovlen = count};
    ssize_t sent = RETRY(sendmsg(pool->channel_fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT));
    if (sent == (ssize_t)total)
        return true;
    worker_log("%s %ld did not take a microtask (%s); it is replaced",
               pool->stem ? "stem" : "pooled process", (long)pool->pid,
               sent == -1 ? strerror(errno) : "short write");
    return false;
}

/* How many microtasks are held for a pooled process (a few at most). */
static size_t queue_length(const struct pool *pool)
{
    size_t length = 0;
    for (const struct queued_task *queued = pool->queued; queued != NULL; queued = queued->next)
        length++;
    return length;
}

/* The busy pooled process of the stage and uid with the fewest microtasks
 * held for it, or NULL. */
static struct pool *pool_busy(const struct stage *stage, uint32_t uid)
{
    struct pool *best = NULL;
    for (size_t i = 0; i < zygote.pool_count; i++) {
        struct pool *pool = zygote.pools[i];
        if (!pool->stem && pool->stage == stage && pool->uid == uid && pool->task != NULL &&
            !pool->retiring && pool->channel_fd != -1 &&
            (best == NULL || queue_length(pool) < queue_length(best)))
            best = pool;
    }
    return best;
}

/* Starts a microtask of a pooled stage: in an idle pooled process of its
 * stage and uid, or in a new one; one handed out ahead waits for a busy
 * one first. Returns false when it must have a process of its own instead
 * (a long item). */
static bool start_pooled(uint64_t token, const struct stage *stage, uint64_t index,
                         const char *item, uint32_t item_length, uint32_t uid, uint32_t attempt,
                         size_t limit, size_t result_limit, bool ahead)
{
    if (item_length > POOL_ITEM_MAX)
        return false;
    if (stage->plan == NULL || !stage->plan->pid_namespace) {
        send_failed(token, "isolation: pooled needs the sandbox's pid namespace");
        return true;
    }
    struct pool *pool = ahead ? pool_busy(stage, uid) : NULL;
    if (pool != NULL) {
        struct queued_task *queued = xmalloc(sizeof *queued + item_length);
        *queued = (struct queued_task){.token = token, .index = index, .stage_id = stage->id,
                                       .uid = uid, .attempt = attempt,
                                       .item_length = item_length, .limit = limit,
                                       .result_limit = result_limit};
        memcpy(queued->item, item, item_length);
        if (pool->queued_last != NULL)
            pool->queued_last->next = queued;
        else
            pool->queued = queued;
        pool->queued_last = queued;
        return true;
    }
    pool = pool_idle(stage, uid, false);
    if (pool != NULL) {
        if (!pool_send(pool, stage, index, attempt, item, item_length)) {
            /* It is gone or does not read: it runs nothing more. */
            pool->retiring = true;
            (void)kill(pool->pid, SIGKILL);
            return start_pooled(token, stage, index, item, item_length, uid, attempt, limit,
                                result_limit, false);
        }
    } else {
        int pipes[STREAM_COUNT][2];
        if (!make_streams(token, pipes))
            return true;
        struct child_task spec = task_spec(stage, item_length, index, attempt, result_limit, uid);
        spec.pooled = true;
        struct cell *cell = NULL;
        pid_t pid = spawn(token, &spec, item, pipes, -1, &cell);
        if (pid == -1)
            return true;
        pool = pool_add(pid, stage, uid, pipes, cell);
        trace_attach(&pool->trace, pid, true);
        send_go(pool->channel_fd, pid);
    }

    struct task *task = pool_task(pool, token, pool->pid, limit, result_limit);
    task->trace = pool->trace;
    send_started(task);
    return true;
}

/* A microtask that was held for a pooled process, now: in that process
 * when it is idle, else in another one, as if it came now (`ahead`: held
 * in turn for a busy one). */
static void queued_start(struct queued_task *queued, bool ahead)
{
    const struct stage *stage = stage_table_find(&zygote.stages, queued->stage_id);
    if (stage == NULL)
        send_failed(queued->token, "stage %u is not defined in this worker", queued->stage_id);
    else
        (void)start_pooled(queued->token, stage, queued->index, queued->item, queued->item_length,
                           queued->uid, queued->attempt, queued->limit, queued->result_limit,
                           ahead);
    free(queued);
}

/* After a pooled process's microtask ended: the first held for it, if
 * any, goes to it now; when it is ending, all of them go elsewhere. */
static void pool_next(struct pool *pool)
{
    struct queued_task *queued = pool->queued;
    if (queued == NULL)
        return;
    if (!pool->retiring && pool->channel_fd != -1) {
        if (pool_send(pool, pool->stage, queued->index, queued->attempt, queued->item,
                      queued->item_length)) {
            pool->queued = queued->next;
            if (pool->queued == NULL)
                pool->queued_last = NULL;
            struct task *task =
                pool_task(pool, queued->token, pool->pid, queued->limit, queued->result_limit);
            task->trace = pool->trace;
            send_started(task);
            free(queued);
            return;
        }
        /* It is gone or does not read: it runs nothing more. */
        pool->retiring = true;
        (void)kill(pool->pid, SIGKILL);
    }
    queue_restart(queue_detach(pool));
}


/* isolation: process, through a stem (child.c's stem_loop): the stage's
 * sandbox is set up once per uid lent, and each microtask's process is a
 * fork of it. Only where that gives each microtask what a process of its
 * own would: a pid namespace for the stem to end leftovers in, a cell
 * (whose /tmp the zygote checks after each microtask), no cgroup per
 * microtask, a syscall filter that lets the stem fork, wait and kill, and
 * ptrace, so that each microtask's process is traced as any other. */
static bool stem_possible(const struct stage *stage, uint32_t uid, uint32_t item_length)
{
    const struct sandbox_plan *plan = stage->plan;
    const struct stage_sandbox *sandbox = &stage->sandbox;
    bool filter_lets_stems = sandbox->syscalls == TW_SYSCALLS_NONE ||
                             (sandbox->syscalls == TW_SYSCALLS_DEFAULT &&
                              sandbox->deny_syscalls.count == 0);
    return !zygote.no_stems && stage->pool_recycle_after == 0 && plan != NULL &&
           plan->problem == NULL && plan->pid_namespace && filter_lets_stems &&
           item_length <= POOL_ITEM_MAX && cell_possible(stage, uid) &&
           !((sandbox->flags & TW_SANDBOX_CGROUP) && cgroup_active());
}

/* The stem's process `pid` is its microtask's (traced; already let go, or
 * not yet: `started`). */
static void stem_bind(struct task *task, pid_t pid, bool started)
{
    task->pid = pid;
    zygote.running_pids[task->running_index] = pid;
    task->trace = (struct trace){.traced = true};
    task->stem_started = started;
    send_started(task);
}

/* Starts a microtask in an idle stem of its stage and uid, or in a new
 * one. False when it must be started as a process of the zygote's instead
 * (the uid's cell is not to be had). */
static bool start_stem(uint64_t token, const struct stage *stage, uint64_t index,
                       const char *item, uint32_t item_length, uint32_t uid, uint32_t attempt,
                       size_t limit, size_t result_limit)
{
    struct pool *pool = pool_idle(stage, uid, true);
    /* Its process, forked ahead, reads the item on its channel. */
    if (pool != NULL && !pool_send(pool, stage, index, attempt, item, item_length)) {
        stem_dismiss_now(pool);
        return start_stem(token, stage, index, item, item_length, uid, attempt, limit,
                          result_limit);
    }
    if (pool == NULL) {
        /* The cell's helper is a fork that reads the stage's plan. */
        lend(stage);
        struct cell *cell = cell_acquire(stage, uid);
        if (cell == NULL)
            return false;
        int pipes[STREAM_COUNT][2];
        int control[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, control) == -1) {
            cell_release(cell);
            return false;
        }
        if (!make_streams(token, pipes)) {
            close(control[0]);
            close(control[1]);
            cell_release(cell);
            return true;
        }
        struct child_task spec = task_spec(stage, item_length, index, attempt, result_limit, uid);
        spec.stem = true;
        spec.control_fd = control[1];
        pid_t pid = spawn(token, &spec, item, pipes, -1, &cell);
        close(control[1]);
        if (pid == -1) {
            close(control[0]);
            return true;
        }
        pool = pool_add(pid, stage, uid, pipes, cell);
        pool->stem = true;
        pool->control_fd = control[0];
        trace_attach_stem(&pool->trace, pid);
        if (!pool->trace.traced)
            zygote.no_stems = true;
        send_go(pool->channel_fd, pid);
    }

    /* Its pid, and its STARTED, once the stem forked it: now, when it was
     * forked ahead and the zygote saw it. */
    struct task *task = pool_task(pool, token, 0, limit, result_limit);
    task->trace = (struct trace){0};
    if (pool->spare != 0) {
        stem_bind(task, pool->spare, pool->spare_started);
        pool->spare = 0;
    }
    return true;
}

static struct pool *pool_by_spare(pid_t pid)
{
    for (size_t i = 0; i < zygote.pool_count; i++) {
        if (zygote.pools[i]->stem && zygote.pools[i]->spare == pid)
            return zygote.pools[i];
    }
    return NULL;
}

/* A held process (see HELD_MAX) is let go, or forgotten. */
static bool unhold(pid_t pid)
{
    for (size_t i = 0; i < zygote.held_count; i++) {
        if (zygote.held[i] == pid) {
            zygote.held[i] = zygote.held[--zygote.held_count];
            return true;
        }
    }
    return false;
}

/* Lets a stem's new process go (trace_adopt()): it stops as it exits only
 * for a stage with a memory limit. */
static void stem_adopt(const struct pool *pool, struct trace *trace, pid_t pid)
{
    trace_adopt(trace, pid, pool->stage == NULL || pool->stage->limits.memory_bytes != 0);
}

static void stem_start_child(struct task *task)
{
    stem_adopt(task->pool, &task->trace, task->pid);
    task->stem_started = true;
}

static void stem_start_spare(struct pool *pool)
{
    struct trace unused;
    stem_adopt(pool, &unused, pool->spare);
    pool->spare_started = true;
}

/* The stem stopped at the fork of its microtask's process (trace.h). */
static void stem_forked(struct pool *pool)
{
    unsigned long message = 0;
    if (ptrace(PTRACE_GETEVENTMSG, pool->pid, NULL, &message) == -1) {
        worker_log("stem %ld: the pid of its fork: %s", (long)pool->pid, strerror(errno));
        (void)kill(pool->pid, SIGKILL);
        return;
    }
    pid_t pid = (pid_t)message;
    struct task *task = pool->task;
    if (task != NULL && task->pid == 0) {
        /* The process of the microtask it was given. */
        stem_bind(task, pid, false);
        if (unhold(pid))
            stem_start_child(task);
    } else if (pool->spare == 0) {
        /* Forked ahead of its next microtask (which may run now still). */
        pool->spare = pid;
        pool->spare_started = false;
        if (unhold(pid))
            stem_start_spare(pool);
    } else {
        worker_log("stem %ld forked twice ahead; it is replaced", (long)pool->pid);
        (void)kill(pid, SIGKILL);
        pool_dismiss(pool);
    }
    trace_resume(pool->pid);
}

static void start_task(uint64_t token, uint32_t stage_id, uint64_t index, const char *item,
                       uint32_t item_length, uint32_t uid, uint32_t attempt, uint32_t flags)
{
    const struct stage *stage = stage_table_find(&zygote.stages, stage_id);
    if (stage == NULL) {
        send_failed(token, "stage %u is not defined in this worker", stage_id);
        return;
    }
    if (stage->executor == NULL) {
        send_failed(token, "executor \"%s\" is not loaded in this worker", stage->executor_name);
        return;
    }
    if (stage->plan != NULL && stage->plan->problem != NULL) {
        send_failed(token, "%s", stage->plan->problem);
        return;
    }
    size_t limit = capped(stage->limits.output_bytes);
    size_t result_limit = capped(stage->result.limit);
    warm_make_way(stage, uid);
    if (stage->pool_recycle_after > 0 &&
        start_pooled(token, stage, index, item, item_length, uid, attempt, limit, result_limit,
                     (flags & TW_TASK_AHEAD) != 0))
        return;
    if (stem_possible(stage, uid, item_length) &&
        start_stem(token, stage, index, item, item_length, uid, attempt, limit, result_limit))
        return;

    int pipes[STREAM_COUNT][2];
    if (!make_streams(token, pipes))
        return;

    /* A sandboxed microtask gets a cgroup when the daemon gave a directory
     * and the stage asks for one (TW_SANDBOX_CGROUP);
     * without one it does not run. */
    int cgroup_fd = -1;
    if (stage->plan != NULL && (stage->sandbox.flags & TW_SANDBOX_CGROUP) && cgroup_active()) {
        char *error;
        cgroup_fd = cgroup_task_create(token, &stage->limits, &error);
        if (cgroup_fd == -1) {
            close_streams(pipes, STREAM_COUNT);
            send_failed(token, "%s", error);
            free(error);
            return;
        }
    }

    struct child_task spec = task_spec(stage, item_length, index, attempt, result_limit, uid);
    spec.memory_by_cgroup = cgroup_fd != -1 && cgroup_limits_memory(&stage->limits);
    uint64_t started_ns = monotonic_ns();
    struct cell *cell = NULL;
    pid_t pid = spawn(token, &spec, item, pipes, cgroup_fd, &cell);
    if (pid == -1)
        return;

    struct task *task = task_acquire();
    task_begin(task, token, pid, stage, limit, result_limit, started_ns);
    trace_attach(&task->trace, pid, stage->plan != NULL && stage->plan->pid_namespace);
    for (int s = 0; s < STREAM_COUNT; s++)
        task->fds[s] = pipes[s][0];
    task->cgroup_fd = cgroup_fd;
    task->cell = cell;
    running_add(task);
    send_go(task->fds[STREAM_CHANNEL], pid);
    send_started(task);
}

/* What a child writes. */

/* Keeps up to the task's limit of a stdout or stderr stream; past it, marks
 * the stream truncated and kills the task for flooding. Standard output
 * that is the result has the result's limit, and going past it is the
 * result's failure: it is not sent at all. */
static void capture(struct task *task, enum stream stream, const unsigned char *data,
                    size_t length)
{
    struct buf *kept = &task->captured[stream];
    bool is_result = stream == STREAM_STDOUT && task->stdout_is_result;
    size_t limit = is_result ? task->result_limit : task->limit;
    size_t room = kept->length < limit ? limit - kept->length : 0;
    buf_append(kept, data, length < room ? length : room);
    if (length <= room)
        return;
    if (is_result) {
        if (!(task->flags & TW_FLAG_RESULT_LIMIT)) {
            task->flags |= TW_FLAG_RESULT_LIMIT;
            signal_task(task, SIGKILL);
        }
        return;
    }
    task->flags |= stream == STREAM_STDOUT ? TW_FLAG_STDOUT_TRUNCATED : TW_FLAG_STDERR_TRUNCATED;
    if (!(task->flags & TW_FLAG_OUTPUT_LIMIT)) {
        task->flags |= TW_FLAG_OUTPUT_LIMIT;
        signal_task(task, SIGKILL);
    }
}

/* Forwards a fraction now, or holds it until the task's interval passed. */
static void offer_progress(struct task *task, double fraction)
{
    if (isnan(fraction))
        return;
    fraction = fraction < 0.0 ? 0.0 : fraction > 1.0 ? 1.0 : fraction;
    if (!task->progress_sent || zygote.now_ns - task->progress_sent_ns >= PROGRESS_INTERVAL_NS) {
        send_progress(task, fraction);
        return;
    }
    if (!task->progress_pending) {
        task->progress_pending = true;
        zygote.progress_pending_count++;
    }
    task->progress_value = fraction;
}

static bool channel_frame_valid(const struct task *task, const struct channel_header *header)
{
    switch (header->type) {
    case CHANNEL_PROGRESS:
        return header->length == 8;
    case CHANNEL_RESULT:
        return header->length >= 1 && header->length - 1 <= task->result_limit;
    case CHANNEL_ERROR:
    case CHANNEL_PERMANENT:
        return header->length <= CHANNEL_ERROR_MAX;
    case CHANNEL_POOL_DONE:
        return task->pool != NULL && !task->pool->stem && !task->pool_done &&
               header->length == sizeof(struct channel_pool_done);
    }
    return false;
}

static void channel_frame(struct task *task, uint32_t type, const unsigned char *payload,
                          uint32_t length)
{
    switch (type) {
    case CHANNEL_PROGRESS: {
        double fraction;
        memcpy(&fraction, payload, sizeof fraction);
        offer_progress(task, fraction);
        break;
    }
    case CHANNEL_RESULT:
        /* Standard output is the result of such a stage; the child sends
         * none, and what the executor forges on descriptor 3 is ignored. */
        if (task->stdout_is_result)
            break;
        task->result.length = 0;
        if (payload[0]) {
            /* Over the limit: discarded in the child, reported here. */
            task->flags |= TW_FLAG_RESULT_LIMIT;
            task->flags &= ~(uint32_t)TW_FLAG_HAS_RESULT;
        } else {
            buf_append(&task->result, payload + 1, length - 1);
            task->flags |= TW_FLAG_HAS_RESULT;
            task->flags &= ~(uint32_t)TW_FLAG_RESULT_LIMIT;
        }
        break;
    case CHANNEL_ERROR:
        task->error_line.length = 0;
        buf_append(&task->error_line, payload, length);
        break;
    case CHANNEL_PERMANENT:
        task->flags |= TW_FLAG_PERMANENT;
        if (length > 0) {
            task->error_line.length = 0;
            buf_append(&task->error_line, payload, length);
        }
        break;
    case CHANNEL_POOL_DONE: {
        /* Finished after this turn's reads (finish_pooled()). */
        struct channel_pool_done done;
        memcpy(&done, payload, sizeof done);
        task->pool_done = true;
        task->pool_last = done.last != 0;
        task->pool_exit_code = done.exit_code < 0 || done.exit_code > 255 ? 255 : done.exit_code;
        task->pool_cpu_us = done.cpu_us;
        task->pool_max_rss_kib = done.max_rss_kib;
        break;
    }
    }
}

/* Appends channel bytes and handles every complete frame. The channel is
 * the executor's to abuse, so anything malformed gets the task killed, and
 * recorded as the reason. */
static void channel_take(struct task *task, const unsigned char *data, size_t length)
{
    struct buf *channel = &task->channel;
    buf_append(channel, data, length);
    size_t at = 0;
    while (channel->length - at >= sizeof(struct channel_header)) {
        struct channel_header header;
        memcpy(&header, channel->data + at, sizeof header);
        if (!channel_frame_valid(task, &header)) {
            worker_log("task %llu (pid %ld) wrote malformed data on its channel; killing it",
                       (unsigned long long)task->token, (long)task->pid);
            task->flags |= TW_FLAG_CHANNEL_ABUSED;
            signal_task(task, SIGKILL);
            close_stream(task, STREAM_CHANNEL);
            channel->length = 0;
            return;
        }
        if (channel->length - at - sizeof header < header.length)
            break;
        channel_frame(task, header.type, channel->data + at + sizeof header, header.length);
        at += sizeof header + header.length;
    }
    buf_consume(channel, at);
}

/* Reads once from one of a task's pipes. Returns true when data arrived;
 * closes the stream at its end. */
static bool read_stream(struct task *task, enum stream stream)
{
    ssize_t got = RETRY(read(task->fds[stream], zygote.scratch, READ_CHUNK));
    if (got > 0) {
        if (stream == STREAM_CHANNEL)
            channel_take(task, zygote.scratch, (size_t)got);
        else
            capture(task, stream, zygote.scratch, (size_t)got);
        return true;
    }
    if (got == -1 && errno == EAGAIN)
        return false;
    if (got == -1)
        worker_log("reading from pid %ld: %s", (long)task->pid, strerror(errno));
    close_stream(task, stream);
    return false;
}

/* Ending a microtask. */

static void finish_task(struct task *task, int status, const struct rusage *usage)
{
    uint64_t wall_us = (monotonic_ns() - task->started_ns) / 1000;
    task->alive = false;
    for (int s = 0; s < STREAM_COUNT; s++) {
        for (int reads = 0; reads < DRAIN_READS && task->fds[s] != -1; reads++) {
            if (!read_stream(task, (enum stream)s))
                break;
        }
        close_stream(task, (enum stream)s);
    }
    /* A fatal signal the kernel delivered (trace.h) is the cause of death:
     * the zygote killed a pid 1 that could not die of it, or it killed the
     * process itself. (A wait status whose low bits are a signal number
     * means "killed by it".) */
    int fatal = task->trace.fatal_signal;
    if (fatal != 0 && WIFSIGNALED(status) &&
        (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == fatal)) {
        status = fatal;
        if (task->trace.kernel_signal)
            task->flags |= TW_FLAG_KERNEL_SIGNAL;
    } else if (task->trace.traced && WIFSIGNALED(status)) {
        /* Killed without a signal being delivered: SIGKILL, or the kernel
         * ending it at once (a seccomp kill). */
        if (WTERMSIG(status) != SIGKILL)
            task->flags |= TW_FLAG_KERNEL_SIGNAL;
    }
    if (task->trace.traced)
        task->flags |= TW_FLAG_TRACED;
    /* Whatever is left in the task's cgroup, even outside its process
     * group, is killed now. */
    if (task->cgroup_fd != -1) {
        task->flags |= cgroup_task_finish(task->token, task->cgroup_fd);
        task->cgroup_fd = -1;
    }
    /* Before DONE: once the daemon has it, the uid (and so the cell) may
     * go to the next microtask. */
    if (task->cell != NULL) {
        cell_release(task->cell);
        task->cell = NULL;
    }
    if (task->progress_pending)
        send_progress(task, task->progress_value);
    send_done(task, status, usage, wall_us);
    running_remove(task);
    task_release(task);
}

/* A stem's microtask, once its stem said that its process and all it left
 * running are gone (CHANNEL_STEM_DONE): what they wrote is all in the
 * streams, which are read empty. Its end is the one the zygote saw as the
 * process's tracer; the stem's word only for a process never traced. The
 * stem stays for the next microtask unless something was left behind: in
 * its IPC namespace (it says so), in the cell's /tmp (the zygote looks),
 * or in the streams (one that an executor closed). */
static void finish_stem(struct task *task)
{
    struct pool *pool = task->pool;
    for (int s = 0; s < STREAM_COUNT; s++) {
        for (int reads = 0; reads < DRAIN_READS && task->fds[s] != -1; reads++) {
            if (!read_stream(task, (enum stream)s))
                break;
        }
        task->fds[s] = -1;
    }
    pool->task = NULL;
    pool->idle_since_ns = monotonic_ns();
    /* One whose stage was forgotten meanwhile stays warm (warm_keep()). */
    bool stale = pool->cell != NULL && cell_stale(pool->cell);
    if (task->pool_last || stale || pool->retiring || !pool->trace.traced || pool->out_fd == -1 ||
        pool->err_fd == -1 || pool->channel_fd == -1)
        stem_dismiss_now(pool);
    struct rusage none = {0};
    if (task->stem_ended) {
        finish_task(task, task->stem_status, &task->stem_usage);
    } else {
        task->trace = (struct trace){0};
        finish_task(task, task->pool_exit_code, &none);
    }
}

/* Reads a stem's control socket: its CHANNEL_STEM_DONE frames. Anything
 * else (it is the worker's own code) ends the stem. */
static void read_control(struct pool *pool)
{
    unsigned char data[256];
    ssize_t got = RETRY(read(pool->control_fd, data, sizeof data));
    if (got == -1 && errno == EAGAIN)
        return;
    if (got <= 0) {
        pool->retiring = true;
        pool_dismiss(pool);
        return;
    }
    buf_append(&pool->control, data, (size_t)got);
    struct {
        struct channel_header header;
        struct channel_stem_done done;
    } report;
    size_t at = 0;
    while (pool->control.length - at >= sizeof report) {
        memcpy(&report, pool->control.data + at, sizeof report);
        at += sizeof report;
        struct task *task = pool->task;
        if (report.header.type == CHANNEL_STEM_DONE && report.done.fork_error != 0 &&
            (task == NULL || task->pid != 0)) {
            /* The fork ahead of its next microtask failed: it ends. */
            worker_log("stem %ld cannot fork: %s; it is replaced", (long)pool->pid,
                       strerror(report.done.fork_error));
            pool_dismiss(pool);
            break;
        }
        if (report.header.type != CHANNEL_STEM_DONE ||
            report.header.length != sizeof report.done || task == NULL || task->pool_done) {
            worker_log("stem %ld sent what it should not; it is replaced", (long)pool->pid);
            pool->retiring = true;
            pool_dismiss(pool);
            (void)kill(pool->pid, SIGKILL);
            break;
        }
        /* Finished after this turn's reads (finish_pooled()). */
        task->pool_done = true;
        task->pool_last = report.done.last != 0;
        task->pool_exit_code = report.done.status;
    }
    buf_consume(&pool->control, at < pool->control.length ? at : pool->control.length);
}

/* The microtasks whose pooled process said they ended (CHANNEL_POOL_DONE),
 * with their output read to its end: the process put /dev/null on its
 * standard output and error, and killed and reaped whatever else could
 * hold them, before it said so. The process stays for the next microtask,
 * unless that was its last. */
static void finish_pooled(void)
{
    for (size_t i = 0; i < zygote.running_count;) {
        struct task *task = zygote.running[i];
        if (!task->pool_done) {
            i++;
            continue;
        }
        struct pool *pool = task->pool;
        if (pool->stem) {
            finish_stem(task);
            continue;
        }
        /* All the microtask wrote is in the pipes now: read them empty
         * (a stream that ended, the process with it, is closed). */
        for (int s = STREAM_STDOUT; s <= STREAM_STDERR; s++) {
            for (int reads = 0; reads < DRAIN_READS && task->fds[s] != -1; reads++) {
                if (!read_stream(task, (enum stream)s))
                    break;
            }
        }
        /* The streams are the pool's, kept for its next microtask. */
        for (int s = 0; s < STREAM_COUNT; s++)
            task->fds[s] = -1;
        pool->trace = task->trace;
        pool->trace.fatal_signal = 0;
        pool->trace.kernel_signal = false;
        pool->task = NULL;
        /* An executor that closed its standard output or error leaves a
         * process the next microtask could not be heard from. */
        if (task->pool_last || pool->stage == NULL || pool->out_fd == -1 || pool->err_fd == -1) {
            pool->retiring = true;
            if (pool->channel_fd != -1) {
                close(pool->channel_fd);
                pool->channel_fd = -1;
            }
        }
        struct rusage usage = {0};
        usage.ru_utime.tv_sec = (time_t)(task->pool_cpu_us / 1000000u);
        usage.ru_utime.tv_usec = (suseconds_t)(task->pool_cpu_us % 1000000u);
        usage.ru_maxrss = (long)task->pool_max_rss_kib;
        /* Removes it from the running ones: the next is at i now (one
         * started by pool_next() goes at the end). */
        finish_task(task, W_EXITCODE(task->pool_exit_code, 0), &usage);
        pool_next(pool);
    }
}

/* Reaps every child that exited: the tasks' processes, and their orphaned
 * descendants (the zygote is their subreaper), which are just released.
 * Each one is first looked at without reaping it: while its zombie exists,
 * its pid cannot be reused, so killing its process group cannot hit anyone
 * else. Tasks that stopped for their tracer (trace.h) are handled and
 * resumed. */
static void reap_children(void)
{
    struct signalfd_siginfo signals[16];
    /* SIGCHLDs coalesce; the signalfd is only a wake-up, emptied here. */
    while (RETRY(read(zygote.signal_fd, signals, sizeof signals)) > 0)
        continue;
    for (;;) {
        siginfo_t changed = {0};
        if (RETRY(waitid(P_ALL, 0, &changed, WEXITED | WSTOPPED | WNOHANG | WNOWAIT)) == -1) {
            if (errno != ECHILD)
                worker_log("waitid: %s", strerror(errno));
            return;
        }
        pid_t pid = changed.si_pid;
        if (pid == 0)
            return;
        struct task *task = running_by_pid(pid);
        struct pool *pool = pool_by_pid(pid);
        if (task != NULL && pool != NULL && changed.si_code != CLD_TRAPPED &&
            changed.si_code != CLD_STOPPED) {
            /* A pooled process that ended may have said first how its
             * microtask ended (and then ended, as after its last one):
             * that is read before its exit is taken for the microtask's. */
            for (int reads = 0; reads < DRAIN_READS && task->fds[STREAM_CHANNEL] != -1 &&
                                !task->pool_done;
                 reads++) {
                if (!read_stream(task, STREAM_CHANNEL))
                    break;
            }
            if (task->pool_done) {
                finish_pooled();
                task = NULL;
            }
        }
        int status;
        if (changed.si_code == CLD_TRAPPED || changed.si_code == CLD_STOPPED) {
            /* Consumes the stop without reaping: a process killed since it
             * stopped is left for the next turn of this loop, which sees
             * its exit. */
            siginfo_t stop = {0};
            if (RETRY(waitid(P_PID, (id_t)pid, &stop, WSTOPPED | WNOHANG)) == -1) {
                worker_log("waiting for pid %ld: %s", (long)pid, strerror(errno));
                return;
            }
            /* As waitpid() would say it: the stop signal, and a ptrace
             * event above it. */
            status = stop.si_status << 8 | 0x7f;
            int event = status >> 16;
            if (pool != NULL && pool->stem && event == PTRACE_EVENT_FORK) {
                stem_forked(pool);
                continue;
            }
            if (pool != NULL && pool->stem && stop.si_pid == pid) {
                /* No signal is for a stem (SIGCHLD it blocks): one that a
                 * microtask sent it is dropped, as the kernel drops those
                 * a namespace's process 1 does not handle. */
                trace_resume(pid);
                continue;
            }
            /* A stem's new process, stopped before it runs: let go once
             * the zygote knows whose it is. */
            bool unbound = task == NULL && pool == NULL;
            if (event == PTRACE_EVENT_STOP && stop.si_pid == pid &&
                (unbound || (task->pool != NULL && task->pool->stem && !task->stem_started))) {
                struct pool *ahead = unbound ? pool_by_spare(pid) : NULL;
                if (!unbound)
                    stem_start_child(task);
                else if (ahead != NULL)
                    stem_start_spare(ahead);
                else if (zygote.held_count < HELD_MAX)
                    zygote.held[zygote.held_count++] = pid;
                else
                    (void)kill(pid, SIGKILL);
                continue;
            }
            struct trace *trace = task != NULL ? &task->trace : pool != NULL ? &pool->trace : NULL;
            if (stop.si_pid == pid && trace != NULL && trace->traced)
                trace_stopped(trace, pid, status);
            else if (stop.si_pid == pid)
                /* No microtask's: a process forked ahead, killed with its
                 * stem before it had one, stops as it exits (it has the
                 * stem's TRACEEXIT until it is let go). Left stopped, it
                 * would never end, nor would its stem, which waits for it
                 * as its namespace's process 1, nor free its cell. */
                trace_resume(pid);
            continue;
        }
        if (task != NULL && killpg(pid, SIGKILL) == -1 && errno != ESRCH)
            worker_log("killing process group %ld: %s", (long)pid, strerror(errno));
        struct rusage usage;
        if (RETRY(wait4(pid, &status, WNOHANG, &usage)) != pid) {
            worker_log("reaping pid %ld: %s", (long)pid, strerror(errno));
            return;
        }
        if (task == NULL && !unhold(pid) && pool == NULL) {
            /* A process forked ahead that ended (its stem did) before it
             * had a microtask. */
            struct pool *ahead = pool_by_spare(pid);
            if (ahead != NULL)
                ahead->spare = 0;
        }
        if (task != NULL && task->pool != NULL && task->pool->stem) {
            /* A stem's microtask: it ends when its stem has ended what it
             * left running (finish_stem()). */
            task->alive = false;
            task->stem_ended = true;
            task->stem_status = status;
            task->stem_usage = usage;
            continue;
        }
        if (task == NULL && pool != NULL && pool->stem && pool->task != NULL) {
            /* A stem ended with a microtask: as its process did, when it
             * had one, else as the stem did (killed before it forked). */
            task = pool->task;
            if (!task->stem_ended) {
                task->stem_status = status;
                task->stem_usage = usage;
                task->trace = pool->trace;
            }
            status = task->stem_status;
            usage = task->stem_usage;
        }
        if (task != NULL) {
            /* Its microtask ends with it; the channel is closed with the
             * task's streams. */
            if (pool != NULL)
                pool->task = NULL;
            finish_task(task, status, &usage);
        }
        if (pool != NULL)
            pool_remove(pool);
    }
}

/* Progress that waited for its interval. */

static void forward_due_progress(void)
{
    for (size_t i = 0; i < zygote.running_count && zygote.progress_pending_count > 0; i++) {
        struct task *task = zygote.running[i];
        if (task->progress_pending &&
            zygote.now_ns - task->progress_sent_ns >= PROGRESS_INTERVAL_NS)
            send_progress(task, task->progress_value);
    }
}

/* The held STARTED frames that are due, or all of them when other frames
 * go to the daemon anyway (`all`). */
static void forward_started(bool all)
{
    for (size_t i = 0; i < zygote.running_count && zygote.started_pending_count > 0; i++) {
        struct task *task = zygote.running[i];
        if (task->started_pending && (all || zygote.now_ns >= task->started_ns + STARTED_DELAY_NS))
            started_now(task);
    }
}

/* Milliseconds until a held STARTED is due, or -1 when none is held. */
static int started_timeout(uint64_t now)
{
    if (zygote.started_pending_count == 0)
        return -1;
    uint64_t soonest = UINT64_MAX;
    for (size_t i = 0; i < zygote.running_count; i++) {
        const struct task *task = zygote.running[i];
        if (task->started_pending && task->started_ns + STARTED_DELAY_NS < soonest)
            soonest = task->started_ns + STARTED_DELAY_NS;
    }
    return soonest <= now ? 0 : (int)((soonest - now + 999999) / 1000000);
}

/* Milliseconds until held progress is due, or -1 when none is held. */
static int progress_timeout(void)
{
    if (zygote.progress_pending_count == 0)
        return -1;
    uint64_t soonest = UINT64_MAX;
    for (size_t i = 0; i < zygote.running_count; i++) {
        const struct task *task = zygote.running[i];
        uint64_t due = task->progress_sent_ns + PROGRESS_INTERVAL_NS;
        if (task->progress_pending && due < soonest)
            soonest = due;
    }
    uint64_t now = monotonic_ns();
    return soonest <= now ? 0 : (int)((soonest - now + 999999) / 1000000);
}

/* Frames from the daemon. */

static bool accepting_input(void)
{
    return output_waiting() < OUTPUT_HIGH_WATER;
}

/* Returns the length prefix of the frame at `data` (which has `available`
 * bytes), exiting when it is impossible; 0 when fewer than 4 bytes are in. */
static uint32_t frame_length(const unsigned char *data, size_t available)
{
    if (available < 4)
        return 0;
    uint32_t length = wire_peek_u32(data);
    if (length == 0 || length > TW_MAX_FRAME)
        malformed("frame length");
    return length;
}

static bool frame_buffered(void)
{
    uint32_t length = frame_length(zygote.input.data, zygote.input.length);
    return length > 0 && zygote.input.length - 4 >= length;
}

/* Reads what the daemon sent: up to READ_CHUNK bytes in all, or as much as
 * the frame being received still needs. Exits on EOF or a broken socket. */
static void receive_input(void)
{
    size_t want = zygote.input.length < READ_CHUNK ? READ_CHUNK - zygote.input.length : 0;
    uint32_t length = frame_length(zygote.input.data, zygote.input.length);
    if (length > 0 && 4 + (size_t)length > zygote.input.length + want)
        want = 4 + (size_t)length - zygote.input.length;
    if (want == 0)
        return; /* complete frames wait to be handled first */
    buf_reserve(&zygote.input, want);
    ssize_t got = RETRY(recv(DAEMON_FD, zygote.input.data + zygote.input.length, want,
                             MSG_DONTWAIT));
    if (got > 0) {
        zygote.input.length += (size_t)got;
        return;
    }
    if (got == 0)
        shut_down(EXIT_SUCCESS);
    if (errno == EAGAIN)
        return;
    if (errno == ECONNRESET) {
        worker_log("the daemon reset the connection");
        shut_down(EXIT_SUCCESS);
    }
    worker_log("reading from the daemon: %s", strerror(errno));
    shut_down(EXIT_FAILURE);
}

static void handle_frame(uint8_t type, struct wire_reader *reader)
{
    switch (type) {
    case TW_MSG_STAGE: {
        struct stage *stage = stage_decode(reader);
        if (stage == NULL)
            malformed("STAGE frame");
        stage->executor = loader_find_executor(&zygote.plugins, stage->executor_name, NULL);
        sandbox_prepare(stage);
        stage_going(stage->id);
        stage_table_put(&zygote.stages, stage);
        return;
    }
    case TW_MSG_TASK: {
        uint64_t token = wire_get_u64(reader);
        uint32_t stage_id = wire_get_u32(reader);
        uint64_t index = wire_get_u64(reader);
        uint32_t item_length;
        const char *item = wire_get_str(reader, &item_length);
        uint32_t uid = wire_get_u32(reader);
        uint32_t attempt = wire_get_u32(reader);
        uint32_t flags = wire_get_u32(reader);
        if (!wire_reader_complete(reader))
            malformed("TASK frame");
        start_task(token, stage_id, index, item, item_length, uid, attempt, flags);
        return;
    }
    case TW_MSG_KILL: {
        uint64_t token = wire_get_u64(reader);
        uint32_t signo = wire_get_u32(reader);
        if (!wire_reader_complete(reader))
            malformed("KILL frame");
        if (signo == 0 || signo >= NSIG) {
            worker_log("ignoring KILL with signal %u", signo);
            return;
        }
        for (size_t i = 0; i < zygote.running_count; i++) {
            if (zygote.running[i]->token == token) {
                signal_task(zygote.running[i], (int)signo);
                return;
            }
        }
        /* One held for a busy pooled process has not started: it never will. */
        for (size_t i = 0; i < zygote.pool_count; i++) {
            struct pool *pool = zygote.pools[i];
            struct queued_task **link = &pool->queued, *previous = NULL;
            while (*link != NULL && (*link)->token != token) {
                previous = *link;
                link = &(*link)->next;
            }
            if (*link != NULL) {
                struct queued_task *killed = *link;
                *link = killed->next;
                if (pool->queued_last == killed)
                    pool->queued_last = previous;
                send_failed(token, "killed (signal %u) before it started", signo);
                free(killed);
                return;
            }
        }
        return; /* the task ended already */
    }
    case TW_MSG_PEEK: {
        uint64_t token = wire_get_u64(reader);
        uint64_t offsets[2];
        offsets[STREAM_STDOUT] = wire_get_u64(reader);
        offsets[STREAM_STDERR] = wire_get_u64(reader);
        uint32_t max = wire_get_u32(reader);
        if (!wire_reader_complete(reader))
            malformed("PEEK frame");
        for (size_t i = 0; i < zygote.running_count; i++) {
            if (zygote.running[i]->token == token) {
                send_output(zygote.running[i], offsets, max);
                return;
            }
        }
        return; /* the task ended already: its DONE has the output */
    }
    case TW_MSG_CONFIG: {
        uint32_t length;
        const char *directory = wire_get_str(reader, &length);
        uint32_t controllers = wire_get_u32(reader);
        if (!wire_reader_complete(reader) || zygote.configured ||
            memchr(directory, '\0', length) != NULL)
            malformed("CONFIG frame");
        zygote.configured = true;
        char *copy = xmalloc((size_t)length + 1);
        memcpy(copy, directory, length);
        copy[length] = '\0';
        bool valid = cgroup_configure(copy, controllers);
        free(copy);
        if (!valid)
            malformed("CONFIG frame (the cgroup directory is not absolute)");
        return;
    }
    case TW_MSG_FORGET_STAGE: {
        uint32_t stage_id = wire_get_u32(reader);
        if (!wire_reader_complete(reader))
            malformed("FORGET_STAGE frame");
        /* Children of the stage that are running keep their own copy. */
        stage_going(stage_id);
        stage_table_forget(&zygote.stages, stage_id);
        return;
    }
    default:
        malformed("frame type");
    }
}

/* Handles up to FRAMES_PER_TURN complete frames of the input. */
static void handle_input(void)
{
    size_t at = 0;
    for (int handled = 0; handled < FRAMES_PER_TURN && accepting_input(); handled++) {
        uint32_t length = frame_length(zygote.input.data + at, zygote.input.length - at);
        if (length == 0 || zygote.input.length - at - 4 < length)
            break;
        struct wire_reader reader = {
            .cursor = zygote.input.data + at + 5,
            .left = length - 1,
        };
        handle_frame(zygote.input.data[at + 4], &reader);
        at += 4 + (size_t)length;
    }
    buf_consume(&zygote.input, at);
    if (zygote.input.length == 0)
        buf_reset(&zygote.input, KEEP_CAPACITY);
}

/* The loop. */

/* Fills the pollfd array: the daemon socket, the signalfd, then every open
 * pipe of every task. Returns the number of entries. */
static size_t build_poll_set(void)
{
    size_t needed = 2 + (STREAM_COUNT + 1) * zygote.running_count;
    if (needed > zygote.poll_capacity) {
        size_t capacity = zygote.poll_capacity ? zygote.poll_capacity : 64;
        while (capacity < needed)
            capacity *= 2;
        zygote.poll_fds = xrealloc(zygote.poll_fds, capacity * sizeof *zygote.poll_fds);
        zygote.poll_targets = xrealloc(zygote.poll_targets,
                                       capacity * sizeof *zygote.poll_targets);
        zygote.poll_capacity = capacity;
    }
    /* The daemon's socket is read only when every complete frame has been
     * handled, so a burst waits in the socket, not in the zygote. */
    bool want_input = accepting_input() && !frame_buffered();
    short daemon_events = (short)((want_input ? POLLIN : 0) | (output_waiting() > 0 ? POLLOUT : 0));
    zygote.poll_fds[0] = (struct pollfd){.fd = DAEMON_FD, .events = daemon_events};
    zygote.poll_fds[1] = (struct pollfd){.fd = zygote.signal_fd, .events = POLLIN};
    size_t count = 2;
    for (size_t i = 0; i < zygote.running_count; i++) {
        struct task *task = zygote.running[i];
        for (int s = 0; s < STREAM_COUNT; s++) {
            if (task->fds[s] == -1)
                continue;
            zygote.poll_fds[count] = (struct pollfd){.fd = task->fds[s], .events = POLLIN};
            zygote.poll_targets[count] = (struct poll_target){task, (enum stream)s};
            count++;
        }
        if (task->pool != NULL && task->pool->stem && task->pool->control_fd != -1) {
            zygote.poll_fds[count] = (struct pollfd){.fd = task->pool->control_fd, .events = POLLIN};
            zygote.poll_targets[count] = (struct poll_target){task, STREAM_CONTROL};
            count++;
        }
    }
    return count;
}

/* The sooner of two poll timeouts in milliseconds (-1: none). */
static int sooner(int a, int b)
{
    return a == -1 || (b != -1 && b < a) ? b : a;
}

static _Noreturn void run(void)
{
    for (;;) {
        size_t count = build_poll_set();
        int timeout = accepting_input() && frame_buffered() ? 0 : progress_timeout();
        uint64_t now = monotonic_ns();
        timeout = sooner(timeout, warm_expire(now));
        timeout = sooner(timeout, cgroup_timeout(now));
        timeout = sooner(timeout, started_timeout(now));
        if (RETRY(poll(zygote.poll_fds, count, timeout)) == -1) {
            worker_log("poll: %s", strerror(errno));
            shut_down(EXIT_FAILURE);
        }
        zygote.now_ns = monotonic_ns();
        for (size_t i = 2; i < count; i++) {
            if (zygote.poll_fds[i].revents == 0)
                continue;
            struct poll_target *target = &zygote.poll_targets[i];
            if (target->stream == STREAM_CONTROL) {
                /* A turn's reads may have finished its task already. */
                if (target->task->pool != NULL && target->task->pool->control_fd != -1)
                    read_control(target->task->pool);
            } else {
                read_stream(target->task, target->stream);
            }
        }
        finish_pooled();
        if (zygote.poll_fds[1].revents != 0)
            reap_children();
        if (zygote.poll_fds[0].revents & (POLLIN | POLLHUP | POLLERR))
            receive_input();
        handle_input();
        forward_due_progress();
        cgroup_retry(zygote.now_ns);
        forward_started(output_waiting() > 0);
        flush_output();
    }
}

/* Setting up. */

/* Raises the soft descriptor limit to the hard one, since every running
 * task holds three pipes. Stores the old limit (for the children) and
 * returns true when it changed. */
static bool raise_descriptor_limit(struct rlimit *original)
{
    if (getrlimit(RLIMIT_NOFILE, original) == -1 || original->rlim_cur >= original->rlim_max)
        return false;
    struct rlimit raised = {original->rlim_max, original->rlim_max};
    return setrlimit(RLIMIT_NOFILE, &raised) == 0;
}

int zygote_main(int file_count, char **files)
{
    int type;
    socklen_t type_length = sizeof type;
    if (getsockopt(DAEMON_FD, SOL_SOCKET, SO_TYPE, &type, &type_length) == -1 ||
        type != SOCK_STREAM) {
        worker_log("standard input must be a stream socket connected to tesserad");
        return EXIT_FAILURE;
    }

    /* A fixed threshold also turns off glibc's habit of raising it after
     * large frees, which would leave big buffers on the heap. */
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    (void)wiped_supported();
    zygote.scratch = wiped_alloc(READ_CHUNK, &zygote.scratch_capacity);

    char **problems = xcalloc((size_t)file_count, sizeof *problems);
    size_t problem_count = 0;
    for (int i = 0; i < file_count; i++) {
        char *path = loader_absolute_path(files[i]);
        if (loader_load(&zygote.plugins, path, &problems[problem_count]) != 0)
            problem_count++;
        free(path);
    }
    /* Anything a plugin's entry point left in a stdio buffer is written
     * now, or every child would inherit the buffer and write it again. */
    fflush(NULL);

    struct rlimit original_nofile;
    bool raised = raise_descriptor_limit(&original_nofile);
    sigset_t child_signals;
    sigemptyset(&child_signals);
    sigaddset(&child_signals, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &child_signals, NULL) == -1 ||
        (zygote.signal_fd = signalfd(-1, &child_signals, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        worker_log("cannot watch for SIGCHLD: %s", strerror(errno));
        return EXIT_FAILURE;
    }
    /* Descendants of a microtask that outlive its process (until the
     * SIGKILL to its group lands) are reparented to the zygote, which reaps
     * them with its own children, so they never pile up as zombies under
     * an init that does not reap. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
        worker_log("cannot become a child subreaper: %s", strerror(errno));
    int devnull_fd = (int)RETRY(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull_fd == -1) {
        worker_log("cannot open /dev/null: %s", strerror(errno));
        return EXIT_FAILURE;
    }
    child_prepare(devnull_fd, raised ? &original_nofile : NULL);
    sandbox_init();

    send_hello(problems, problem_count);
    for (size_t i = 0; i < problem_count; i++)
        free(problems[i]);
    free(problems);
    run();
}
