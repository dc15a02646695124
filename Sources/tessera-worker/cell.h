/*
 * cell.h - the file system view a sandboxed microtask joins instead of
 * building it.
 *
 * Building a microtask's mounts (a mount namespace, a read-only copy of the
 * host's tree, the writable and hidden paths, a private /tmp, a /proc) and
 * tearing them down again was about half of what a sandboxed microtask
 * cost. A cell is that view made once, by a short-lived helper process,
 * and kept by the zygote as descriptors: of the mount namespace, of the UTS
 * namespace, of the cell's /tmp. A microtask's process then only setns()
 * into them.
 *
 * A cell belongs to one mount plan and one uid, and serves one
 * microtask at a time: it exists only for microtasks that have a uid of
 * their own (a root daemon's `user: dynamic`, its default), which no other
 * running microtask shares (the daemon lends each uid to one running
 * microtask at a time). So what a cell shares between the microtasks that
 * use it, in turn and never at once, is:
 *   - the mounts, which no microtask can change (it has no capability);
 *   - /tmp (and /var/tmp, the same file system): the zygote looks at it
 *     after every microtask, and a cell whose /tmp is not as it was made is
 *     thrown away, so that the next microtask starts with an empty one;
 *   - /proc, mounted by the helper with hidepid=invisible: a microtask sees
 *     the processes of its own uid (its own), and no one else's. Each
 *     microtask is still process 1 of a pid namespace of its own (its
 *     getpid() is 1), but /proc numbers its processes as the zygote sees
 *     them;
 *   - the UTS namespace (the host name), which no microtask can change.
 * Each microtask still gets its own pid and IPC namespaces, and the rest of
 * the sandbox (identity, capabilities, no_new_privs, Landlock, seccomp,
 * rlimits, cgroup) exactly as without a cell.
 *
 * A cell is shared by the stages whose mounts are planned alike (the
 * stages of the runs of one job, unless they mount their run directory),
 * and shows the host's mounts as they were when it was made: it is made
 * again when it is a minute old, and after a microtask that left files in
 * /tmp.
 */
#ifndef TESSERA_WORKER_CELL_H
#define TESSERA_WORKER_CELL_H

#include <stdbool.h>
#include <stdint.h>

#include "stage.h"

struct cell {
    char *key; /* the plan's cell_key (sandbox.h) */
    uint64_t made_ns; /* CLOCK_MONOTONIC */
    uint32_t uid;
    int mount_fd; /* the mount namespace */
    int uts_fd;   /* the UTS namespace, or -1 */
    int tmp_fd;   /* the cell's /tmp, or -1 without a private one */
    uint32_t tmp_entries; /* entries of /tmp when the cell was made */
    bool busy;
    uint64_t uses;
};

/* Whether microtasks of this stage, given `uid` (a uid of their own, or
 * TW_ID_UNCHANGED), can join a cell. */
bool cell_possible(const struct stage *stage, uint32_t uid);

/* The idle cell of this stage and uid, made now if there is none, marked
 * busy. NULL when it cannot be made (logged once per stage): the microtask
 * then builds its mounts itself. The stage must be lent (wiped_lend()). */
struct cell *cell_acquire(const struct stage *stage, uint32_t uid);

/* After the microtask that used it was reaped: kept for the next one when
 * its /tmp is as it was made, closed otherwise. */
void cell_release(struct cell *cell);

/* Whether the cell should not take another microtask: something was left
 * in its /tmp, or it is older than its maximal age. */
bool cell_stale(struct cell *cell);

/* The stage of `plan` is going away (cells outlive it; this forgets that
 * its cell could not be made). */
void cell_forget(const struct sandbox_plan *plan);

/* In the child: joins the cell's namespaces (from sandbox_enter()). */
void cell_enter(const struct cell *cell);

#endif /* TESSERA_WORKER_CELL_H */
