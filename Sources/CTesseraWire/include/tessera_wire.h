/*
 * tessera_wire.h - the private protocol between tesserad and tessera-worker.
 *
 * The daemon starts the worker zygote with uv_spawn and talks to it over a
 * Unix stream socket that is the worker's standard input. Both directions
 * carry frames:
 *
 *     u32 length (little endian; bytes that follow, type included)
 *     u8  type   (TW_MSG_*)
 *     ... fields in the order documented for the type
 *
 * Field encodings (all little endian):
 *     u8, u32, u64, i32, f64   fixed width
 *     str                      u32 byte count, then the bytes (no NUL)
 *
 * This is not a public interface: both ends are built from one tree and are
 * always the same version. TW_PROTOCOL_VERSION is still checked in HELLO so
 * a stale worker binary is reported instead of misread.
 */
#ifndef TESSERA_WIRE_H
#define TESSERA_WIRE_H

#define TW_PROTOCOL_VERSION 7

/* Largest frame either side accepts; anything longer is a protocol error. */
#define TW_MAX_FRAME 67108864 /* 64 MiB */

/* The most the worker keeps of each output stream and of a result, whatever
 * the stage's `output` limit and result_limit say (larger values are taken
 * as this); three of them fit in one DONE frame. */
#define TW_OUTPUT_CAP 16777216 /* 16 MiB */

enum tw_message_type {
    /* daemon -> worker */

    /* Defines a stage the worker will run microtasks of.
     *   u32 stage_id
     *   str executor name
     *   u64 cpu_ms, u64 memory_bytes, u64 open_files, u64 processes,
     *   u64 file_size_bytes, u64 output_bytes,
     *   u64 cpu_quota_percent (cgroup cpu.max; 100 = one CPU)  (0 = no limit)
     *   u32 param_count, then per parameter:
     *       str name, u8 type (tessera_param_type), u32 value_count,
     *       value_count x str   (scalars: 1 value as text; lists: the
     *                            elements; maps: key, value, key, value...)
     *   then the sandbox (see "Sandbox" below):
     *   u32 flags (TW_SANDBOX_*), u32 uid, u32 gid (TW_ID_UNCHANGED: keep)
     *   u8 syscalls (TW_SYSCALLS_*)
     *   u64 size of the private /tmp in bytes
     *   u32 count, count x str   read-only paths
     *   u32 count, count x str   writable paths (bind-mounted read-write)
     *   u32 count, count x str   hidden paths (an empty read-only tmpfs on a
     *                            directory, /dev/null on a file)
     *   u32 count, count x str   syscall names to allow beyond the profile
     *   u32 count, count x str   syscall names to deny beyond the profile
     *   u32 count, count x str   environment, "NAME=value" each
     *   then what the stage's result is and where the stage belongs:
     *   u8  result_source (TW_RESULT_*)
     *   u64 result_limit: the longest result in bytes (0 = TW_OUTPUT_CAP);
     *       a longer one sets TW_FLAG_RESULT_LIMIT in DONE and is not sent
     *   u64 run_id
     *   str job name, str stage name
     *   str run directory ("" = none)
     *   str input path: the input file of a reduce stage ("" = none)
     *   u32 pool recycle_after: with isolation: pooled, how many microtasks
     *       a pooled process runs before it is replaced (0 = a process per
     *       microtask)
     * The run id, the names, the paths and TASK's attempt are given to the
     * executor (host functions of plugin ABI 1.1), to the templates of its
     * parameters and to its environment (TESSERA_RUN, ...).
     * Redefining an id replaces the definition. */
    TW_MSG_STAGE = 1,

    /* Starts one microtask.
     *   u64 token (the daemon's handle for it), u32 stage_id,
     *   u64 index, str item,
     *   u32 uid: the identity (uid and gid) of this microtask when the
     *       stage's user is `dynamic`, else TW_ID_UNCHANGED (the stage's),
     *   u32 attempt: 1 for the microtask's first attempt, 2 for its first
     *       retry, ...
     *   u32 flags: TW_TASK_AHEAD: handed out ahead, for a pooled stage: it
     *       runs next in a busy pooled process of its stage and uid (the
     *       zygote holds it until that process has sent its result), not
     *       in a process of its own beside */
    TW_MSG_TASK = 2,

    /* Signals the process group of a running microtask.
     *   u64 token, u32 signal number */
    TW_MSG_KILL = 3,

    /* Forgets a stage definition.  u32 stage_id */
    TW_MSG_FORGET_STAGE = 4,

    /* Worker-wide settings, sent once, before any STAGE.
     *   str cgroup directory: a cgroup v2 directory the worker may create
     *       one child cgroup in per sandboxed microtask ("" = no cgroups)
     *   u32 controllers: TW_CGROUP_* enabled for those children */
    TW_MSG_CONFIG = 5,

    /* Asks for what a running microtask has written so far (tessera logs
     * -f), from the given offsets, at most `max` bytes of each stream. The
     * worker answers with OUTPUT, or not at all when the microtask has
     * ended (its DONE carries the whole output).
     *   u64 token, u64 stdout offset, u64 stderr offset, u32 max */
    TW_MSG_PEEK = 6,

    /* worker -> daemon */

    /* Sent once, after the plugins are loaded.
     *   u32 protocol version, u32 worker pid,
     *   u32 problem_count, problem_count x str (plugin load problems) */
    TW_MSG_HELLO = 64,

    /* A microtask's process exists.  u64 token, u32 pid.  Sent 10 ms after
     * the microtask started, or with the first frame that goes sooner (at
     * the latest just before its DONE): it only tells the pid to show. */
    TW_MSG_STARTED = 65,

    /* Progress reported by the executor.  u64 token, f64 fraction */
    TW_MSG_PROGRESS = 66,

    /* A microtask ended (its process was reaped and its process group killed).
     * Everything but the result, the output and the error line is what the
     * kernel told the worker (wait4, ptrace, /proc), never what the
     * microtask wrote.
     *   u64 token
     *   u8  how: TW_END_*
     *   i32 exit code, i32 signal (both always sent; the one that does not
     *       apply to `how` is 0)
     *   u64 user cpu µs, u64 system cpu µs, u64 max rss KiB, u64 wall µs
     *   u64 peak address space in bytes, read by the worker when a fatal
     *       signal arrived or the process exited with a failure (0: not read)
     *   u32 flags: TW_FLAG_*
     *   str result, str stdout, str stderr, str worker error (TW_END_FAILED),
     *   str the executor's last error-level log message ("" if none)
     * The result is meaningful only with TW_FLAG_HAS_RESULT. With
     * TW_RESULT_STDOUT it is the captured standard output, sent however the
     * process ended (empty is a result too), and stdout is always "". */
    TW_MSG_DONE = 67,

    /* The answer to PEEK: what was asked for of the output kept so far
     * (each stream up to the stage's output limit).
     *   u64 token, u64 stdout offset, u64 stderr offset (as asked),
     *   str stdout from that offset, str stderr from that offset */
    TW_MSG_OUTPUT = 68
};

/* Sandbox flags of a STAGE frame. Without TW_SANDBOX_ENABLED the child
 * gets only the rlimits profile (session, fds, rlimits, no_new_privs) and
 * every other field is ignored. */
enum tw_sandbox_flags {
    TW_SANDBOX_ENABLED = 1u << 0,
    TW_SANDBOX_NS_PID = 1u << 1,     /* new pid namespace, fresh /proc */
    TW_SANDBOX_NS_IPC = 1u << 2,
    TW_SANDBOX_NS_UTS = 1u << 3,
    TW_SANDBOX_NS_MOUNT = 1u << 4,   /* needed by every filesystem setting */
    TW_SANDBOX_NS_USER = 1u << 5,    /* set by the daemon when it is not root */
    TW_SANDBOX_NETWORK_NONE = 1u << 6, /* an empty network namespace (loopback only) */
    TW_SANDBOX_PRIVATE_TMP = 1u << 7,  /* fresh tmpfs on /tmp and /var/tmp */
    TW_SANDBOX_LANDLOCK = 1u << 8,     /* best effort, by the kernel's ABI */
    TW_SANDBOX_CGROUP = 1u << 9        /* a cgroup of its own (TW_MSG_CONFIG); the
                                        * daemon asks for one when it limits
                                        * something or when there is no pid
                                        * namespace to end what is left */
};

/* Controllers of a worker's cgroup directory (TW_MSG_CONFIG). */
enum tw_cgroup_controllers {
    TW_CGROUP_MEMORY = 1u << 0, /* memory.max, memory.swap.max, memory.oom.group */
    TW_CGROUP_PIDS = 1u << 1,   /* pids.max */
    TW_CGROUP_CPU = 1u << 2     /* cpu.max */
};

/* What a stage's result is (STAGE). */
enum tw_result_source {
    TW_RESULT_EXECUTOR = 0, /* what the executor passes to host->set_result */
    TW_RESULT_STDOUT = 1    /* the microtask's captured standard output; stdout
                             * is then limited by result_limit, not `output` */
};

/* uid/gid value meaning "do not switch". */
#define TW_ID_UNCHANGED 4294967295u

/* Flags of TW_MSG_TASK. */
#define TW_TASK_AHEAD 1u

enum tw_syscalls {
    TW_SYSCALLS_NONE = 0,    /* no seccomp filter */
    TW_SYSCALLS_DEFAULT = 1, /* deny the dangerous calls, allow the rest */
    TW_SYSCALLS_COMPUTE = 2  /* allow only what a pure computation needs */
};

enum tw_end {
    TW_END_EXITED = 0,   /* exited with a code */
    TW_END_SIGNALED = 1, /* killed by a signal */
    TW_END_FAILED = 2    /* never ran: unknown stage or executor, fork failed */
};

enum tw_flags {
    TW_FLAG_STDOUT_TRUNCATED = 1u << 0,
    TW_FLAG_STDERR_TRUNCATED = 1u << 1,
    TW_FLAG_OUTPUT_LIMIT = 1u << 2,     /* killed for writing past `output` */
    TW_FLAG_HAS_RESULT = 1u << 3,
    /* 1u << 4 was TW_FLAG_RESULT_TRUNCATED until protocol 3: results are no
     * longer cut, see TW_FLAG_RESULT_LIMIT. */
    TW_FLAG_KERNEL_SIGNAL = 1u << 5,    /* the kernel sent the fatal signal (a fault, a
                                         * limit, a seccomp kill), not a process */
    TW_FLAG_OOM_KILLED = 1u << 6,       /* the cgroup's memory.events counted an OOM kill */
    TW_FLAG_CHANNEL_ABUSED = 1u << 7,   /* killed for writing malformed data on its channel */
    TW_FLAG_TRACED = 1u << 8,           /* the worker traced the process (trace.h), so
                                         * TW_FLAG_KERNEL_SIGNAL is known */
    TW_FLAG_PERMANENT = 1u << 10,       /* the executor called fail_permanently(): not
                                         * to be retried (protocol 4) */
    TW_FLAG_RESULT_LIMIT = 1u << 9      /* the result was longer than result_limit:
                                         * with TW_RESULT_STDOUT the task was killed
                                         * as its stdout went past it (as for
                                         * `output`), else the result was discarded;
                                         * either way none is sent (no
                                         * TW_FLAG_HAS_RESULT) */
};

#endif /* TESSERA_WIRE_H */
