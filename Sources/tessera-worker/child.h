/*
 * child.h - what a microtask's process does between fork() and _exit().
 *
 * The zygote forks (or clones, see sandbox.h), and the child calls
 * child_run(), which never returns: it applies the sandbox in a fixed
 * order (session, parent-death signal, descriptors, signals, resource
 * limits, no_new_privs; for a stage with TW_SANDBOX_ENABLED also
 * namespaces, mounts, identity, capabilities, Landlock and seccomp, see
 * child.c), waits until the zygote traces it, calls the executor and sends
 * its result on its channel (see channel.h).
 */
#ifndef TESSERA_WORKER_CHILD_H
#define TESSERA_WORKER_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "stage.h"

struct cell;

/* The exit status of a child that could not set itself up. */
#define CHILD_SETUP_FAILED 127

/* Everything a child needs to know about its microtask. The pointers are
 * into the zygote's memory, which the child has a copy of. */
struct child_task {
    const struct stage *stage;
    const char *item;
    size_t item_length;
    uint64_t index;
    uint32_t attempt;
    size_t result_limit; /* the longest result the executor may set */
    int stdout_fd;       /* write ends of the three pipes */
    int stderr_fd;
    int channel_fd;
    uint32_t uid;        /* a dynamic user's uid and gid, or TW_ID_UNCHANGED */
    /* The microtask's cgroup (cgroup.h), when the child must move itself
     * into it (a kernel without clone3's CLONE_INTO_CGROUP): it writes
     * "0" to its cgroup.procs before anything else. -1 otherwise. */
    int join_cgroup_fd;
    /* The cgroup's memory.max limits the microtask: no RLIMIT_AS, which
     * counts address space and would fail allocations far earlier. */
    bool memory_by_cgroup;
    /* The cell (cell.h) the microtask joins, or NULL. */
    const struct cell *cell;
    /* isolation: pooled: after this first microtask the process runs more
     * of its stage (child.c, pool_loop). */
    bool pooled;
    /* isolation: process through a stem: this process forks each of its
     * stage's microtasks (child.c, stem_loop), and reports on its control
     * socket, whose end is `control_fd`. */
    bool stem;
    int control_fd;
};

/* Records, once in the zygote, what every child needs and would otherwise
 * look up again each time: the zygote's pid, a descriptor of /dev/null, the
 * resource limits to go back to and the signals whose disposition must be
 * reset. `original_nofile` is the
 * RLIMIT_NOFILE the worker was started with, before the zygote raised it. */
void child_prepare(int devnull_fd, const struct rlimit *original_nofile);

_Noreturn void child_run(const struct child_task *task);

#endif /* TESSERA_WORKER_CHILD_H */
