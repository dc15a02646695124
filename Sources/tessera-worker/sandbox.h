/*
 * sandbox.h - the namespaces, mounts, identity and capabilities of a
 * microtask, prepared once per stage in the zygote and applied in each
 * child.
 *
 * A stage with TW_SANDBOX_ENABLED gets a `struct sandbox_plan` when it is
 * defined: everything that can be worked out without the child (which
 * namespaces come from clone() and which from unshare(), the order of the
 * mounts, the seccomp program, whether the shared empty network namespace
 * exists) is worked out then, so a child only issues the system calls. A
 * stage the worker cannot sandbox as asked gets a `problem`, and its
 * microtasks fail with it without running.
 *
 * The child's order (after fork, see child.c), following nsjail and
 * bubblewrap:
 *   setsid; descriptors 0-3 in place (so failures reach the task's
 *   stderr); signals reset; user namespace maps (the child writes its
 *   own); setns() into the shared empty network namespace; unshare() of
 *   the mount, IPC, UTS (and, in a user namespace, network) namespaces;
 *   mounts (private propagation, copies of the read-only and writable
 *   paths; then, parents first, "/" made read-only, the file systems the
 *   sandbox creates (private /tmp, hidden directories, a fresh /proc) with
 *   the mount points of what lies beneath them, the copies attached, nodev
 *   lifted from /dev, hidden files covered); chdir("/"); bounding
 *   set dropped; groups, gid, uid switched; PR_SET_PDEATHSIG and a check
 *   that the zygote still lives; ambient and all other capabilities
 *   dropped; no_new_privs; Landlock; every other descriptor closed;
 *   environment; rlimits; seccomp.
 * A failed step writes "sandbox: <step>: <error>" to the task's stderr and
 * exits with CHILD_SETUP_FAILED (127).
 */
#ifndef TESSERA_WORKER_SANDBOX_H
#define TESSERA_WORKER_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "stage.h"

enum mount_kind {
    /* in this order where two act on the same path */
    MOUNT_TMP,     /* a fresh tmpfs on /tmp */
    MOUNT_VAR_TMP, /* /tmp bound on /var/tmp */
    MOUNT_PROC,    /* a fresh /proc for the pid namespace */
    MOUNT_READ_ONLY,
    MOUNT_WRITABLE,
    MOUNT_DEVICES, /* /dev: lift the nodev a read-only parent put on it */
    MOUNT_HIDDEN
};

struct mount_step {
    enum mount_kind kind;
    const char *path;  /* into the stage's strings, or a literal */
    /* MOUNT_READ_ONLY (but "/") and MOUNT_WRITABLE: their copy, taken
     * before anything is mounted, so a path beneath a file system the
     * sandbox creates still shows the host's files. */
    int tree;
    /* The path is, or is beneath, a directory (else a file). */
    bool directory;
    /* The step that creates the file system this path lies in (MOUNT_TMP,
     * MOUNT_VAR_TMP or a hidden directory), whose mount point the child
     * makes in it; -1 when the path is on the host's tree. */
    int parent;
    /* MOUNT_HIDDEN: nothing is mounted beneath it, so it may be a bind of
     * the empty file system another hidden directory got (a bind costs a
     * few µs, a tmpfs tens). */
    bool shareable;
};

struct sandbox_plan {
    /* Set when the stage cannot run as asked; its tasks fail with it. */
    char *problem;
    /* Given to the raw clone(): CLONE_NEWPID (so the microtask is pid 1 of
     * its namespace) and CLONE_NEWUSER for a worker without privileges.
     * 0: a plain fork(). */
    unsigned long clone_flags;
    /* unshare()d by the child: CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS,
     * and CLONE_NEWNET when the microtask gets its own network. */
    int unshare_flags;
    bool pid_namespace;
    /* The user namespace made by clone() (a worker that is not root): the
     * child maps its ids. */
    bool user_namespace_first;
    /* setns() into the shared empty network namespace (netns.h), -1 for
     * none... */
    int shared_network_fd;
    /* ...or bring up lo in the microtask's own one (a worker without
     * privileges cannot hand its shared one to a user namespace). */
    bool own_network;
    /* Mounts, when the stage has a mount namespace. */
    bool mounts;
    bool bind_devices; /* /dev is no mount point: bind it first */
    struct mount_step *steps;
    uint32_t step_count;
    uint32_t tree_count; /* steps with a copy to take */
    bool tmp;            /* a fresh tmpfs on /tmp (and /var/tmp) */
    char *tmp_options;   /* its mount options, with its size */
    bool landlock;
    struct syscall_filter *filter; /* NULL: none */
    /* What its cells' mounts depend on (cell.h); NULL when its microtasks
     * cannot join cells. */
    char *cell_key;
};

/* Records, once in the zygote, what every child and plan needs: the
 * worker's ids and privileges, the last capability, the Landlock ABI, a
 * pidfd of the zygote, whether /dev is a mount point. */
void sandbox_init(void);

/* Works out the plan of a stage with TW_SANDBOX_ENABLED into stage->plan
 * (NULL for the others). Never fails: problems go into the plan. */
void sandbox_prepare(struct stage *stage);

void sandbox_plan_free(struct sandbox_plan *plan);

/* Creates a microtask's process: the raw clone system call with the plan's
 * namespace flags, or fork() when there are none (or no plan). Returns
 * like fork(). A raw clone runs no pthread_atfork handlers; the zygote is
 * single-threaded and holds no lock when it forks, so glibc's state is
 * consistent in the child all the same.
 * With a `cgroup_fd` (not -1), the process starts in that cgroup: the raw
 * clone3 system call with the namespace flags and CLONE_INTO_CGROUP (Linux
 * 5.7). Where the kernel lacks it (noticed once, then remembered), the
 * way above, after setting *join_cgroup_fd to `cgroup_fd` so that the
 * child moves itself in (struct child_task). */
pid_t sandbox_clone(const struct sandbox_plan *plan, int cgroup_fd, int *join_cgroup_fd);

/* In the child: the namespaces and mounts, up to chdir("/"); with a
 * `cell` (cell.h, or NULL), its namespaces are joined instead of mounting. */
struct cell;
void sandbox_enter(const struct stage *stage, const struct cell *cell);

/* Whether the microtasks of a plan may join cells (cell.h): a privileged
 * worker without a user namespace, with the mount and pid namespaces, and
 * the shared network namespace (or the host's). */
bool sandbox_cells_allowed(const struct sandbox_plan *plan);
bool sandbox_cell_has_uts(const struct sandbox_plan *plan);
bool sandbox_cell_has_tmp(const struct sandbox_plan *plan);

/* In a cell's helper process: the mount (and UTS) namespaces of the plan,
 * and its mounts, with /proc mounted hidepid=invisible. */
void sandbox_make_cell(const struct sandbox_plan *plan);

/* In the child: bounding set, identity, parent-death signal (and the
 * zygote check), ambient and all other capabilities. `dynamic_id`, unless
 * TW_ID_UNCHANGED, is the uid and gid of this microtask in place of the
 * stage's (a `dynamic` user, one per running microtask). */
void sandbox_drop_privileges(const struct stage *stage, uint32_t dynamic_id);

/* In the child: Landlock, if the stage asks for it and the kernel has it.
 * no_new_privs must be set. */
void sandbox_landlock(const struct stage *stage);

/* In the child, last: the seccomp program, if the stage has one. */
void sandbox_seccomp(const struct stage *stage);

/* Writes "sandbox: <step>[ <path>]: <strerror(errno)>" to standard error
 * and exits with CHILD_SETUP_FAILED. */
_Noreturn void sandbox_fail(const char *step, const char *path);

#endif /* TESSERA_WORKER_SANDBOX_H */
