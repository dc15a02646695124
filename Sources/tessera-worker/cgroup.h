/*
 * cgroup.h - a cgroup v2 per sandboxed microtask.
 *
 * The daemon may give the worker a cgroup v2 directory (TW_MSG_CONFIG),
 * prepared by the daemon: its cgroup.subtree_control already enables the
 * controllers it names (TW_CGROUP_*); the worker enables nothing itself.
 * Then every microtask of a sandboxed stage gets a cgroup of its own,
 * <directory>/task-<token>, made just before the child is created:
 *
 *   - its limits, by the controllers there are: memory.max (with
 *     memory.swap.max 0 and memory.oom.group 1), pids.max, cpu.max;
 *   - the child starts in it (clone3 with CLONE_INTO_CGROUP; on kernels
 *     without it the child moves itself in first thing, see child.h);
 *   - when the microtask's main process has been reaped, memory.events
 *     tells whether the kernel's OOM killer acted (TW_FLAG_OOM_KILLED),
 *     and the cgroup is removed; if processes are left in it (the kernel
 *     refuses the rmdir), cgroup.kill ends them, even those that left the
 *     microtask's process group, and the removal is tried again later.
 *
 * Removal waits for the killed processes to be gone (rmdir fails with
 * EBUSY until then). The zygote never waits for that: cgroups still busy
 * are kept in a list and tried again on later turns of its loop, every
 * CGROUP_RETRY_MS, and once more (after killing them again) when the
 * zygote exits.
 *
 * Everything is relative to a descriptor of the directory, opened once,
 * and every file is written with one write(), so a microtask costs a
 * mkdirat, an openat of its directory, one open/write/close per limit,
 * clone3 into the cgroup, one read of memory.events (with the memory
 * controller) and an unlinkat; cgroup.kill only when something is left.
 * Measured on the 2-core development VM (a cgroup v1 host, so no
 * controllers): about 60 µs of wall time per sandboxed microtask at 4 in
 * flight (mkdir ~30 µs, clone3 into a new cgroup ~45 µs more than without,
 * rmdir ~22 µs, all in the kernel).
 */
#ifndef TESSERA_WORKER_CGROUP_H
#define TESSERA_WORKER_CGROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "stage.h"

/* How often cgroups that could not be removed yet are tried again. */
#define CGROUP_RETRY_MS 50

/* Handles a CONFIG frame: `directory` (NUL-terminated; "" for none) and
 * TW_CGROUP_* `controllers`. Returns false when the frame is malformed (a
 * directory that is not absolute). A directory that cannot be opened is
 * not a protocol error: it is logged, and every microtask that would get a
 * cgroup fails with the reason instead of running without one. */
bool cgroup_configure(const char *directory, uint32_t controllers);

/* True when the worker makes a cgroup per sandboxed microtask. */
bool cgroup_active(void);

/* True when the memory controller enforces `limits`' memory (the child
 * then sets no RLIMIT_AS). Only meaningful when the task has a cgroup. */
bool cgroup_limits_memory(const struct stage_limits *limits);

/* Makes the cgroup of microtask `token` and writes its limits. Returns a
 * descriptor of its directory (close-on-exec), or -1 with a message for the
 * daemon in *error (to be freed), the cgroup removed again. */
int cgroup_task_create(uint64_t token, const struct stage_limits *limits, char **error);

/* The path of a microtask's cgroup, for messages (to be freed). */
char *cgroup_task_path(uint64_t token);

/* Kills every process in a microtask's cgroup (cgroup.kill). */
void cgroup_task_kill(int fd);

/* Ends a microtask's cgroup once its main process is reaped: reads
 * memory.events, removes the cgroup, or kills what is left in it and
 * removes it later; closes `fd`. Returns TW_FLAG_OOM_KILLED or 0. */
uint32_t cgroup_task_finish(uint64_t token, int fd);

/* Milliseconds until cgroups waiting to be removed are tried again, or -1
 * when none waits. */
int cgroup_timeout(uint64_t now_ns);

/* Tries again to remove the cgroups that were still busy, when
 * CGROUP_RETRY_MS have passed since the last try. */
void cgroup_retry(uint64_t now_ns);

/* At the zygote's exit, after every running task's cgroup went through
 * cgroup_task_kill() and, once its child was reaped, cgroup_task_finish():
 * kills what is in the cgroups still waiting and removes them, retrying
 * for a short while (SHUT_DOWN_TRIES). */
void cgroup_shut_down(void);

#endif /* TESSERA_WORKER_CGROUP_H */
