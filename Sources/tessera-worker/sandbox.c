/*
 * sandbox.c - plans (in the zygote) and namespaces, mounts, identity and
 * capabilities (in the child). See sandbox.h for the order of the steps.
 *
 * Costs, measured on the 2-core development VM: fork() of the zygote
 * costs ~60 µs of wall time a microtask at 16 in flight; a pid namespace
 * adds ~2 µs, UTS ~3 µs, IPC ~25 µs (its mqueue mount), a mount namespace
 * ~50 µs (copying the mount table, and tearing it down at exit), each
 * tmpfs ~13 µs, a fresh /proc ~12 µs, joining the shared network namespace
 * ~0. Hence:
 *   - only CLONE_NEWPID (and CLONE_NEWUSER) are given to clone(), which
 *     runs in the single-threaded zygote; the mount, IPC and UTS
 *     namespaces are unshare()d by the child, in parallel with the
 *     zygote's next fork;
 *   - read-only "/" is one recursive mount_setattr() on the root mount of
 *     the new namespace (a bind of "/" onto itself would not even be seen:
 *     a process's root stays the mount under it);
 *   - a writable path is cloned (open_tree) before anything is made
 *     read-only and attached over it afterwards: it keeps exactly the
 *     host's flags beneath it, without a read-only flag to lift (lifting
 *     one recursively would also lift those the host set on submounts);
 *   - one network namespace is shared by all `network: none` microtasks
 *     (netns.h).
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <tessera_wire.h>

#include "cell.h"
#include "child.h"
#include "io.h"
#include "landlock.h"
#include "netns.h"
#include "syscall_filter.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* Room for the mount points of what a stage puts beneath a hidden
 * directory; it holds no data. */
#define HIDDEN_OPTIONS "mode=0555,size=4k,nr_inodes=1024"

/* What the zygote records once (sandbox_init); children inherit it. */
static struct {
    pid_t zygote_pid;
    /* A pidfd of the zygote, which a child in a new pid namespace polls to
     * learn whether the zygote died before PR_SET_PDEATHSIG took effect
     * (there getppid() is 0 whoever the parent is); -1 without pidfds. */
    int zygote_pidfd;
    uid_t euid;
    gid_t egid;
    /* CAP_SYS_ADMIN in the worker's user namespace: namespaces can be
     * made without a user namespace of their own, and ids switched. */
    bool privileged;
    /* ...and CAP_SYS_CHROOT: a microtask can join a cell (cell.h). */
    bool can_join_mounts;
    int cap_last;
    int landlock_abi;
    struct landlock_common landlock;
    /* The worker's ambient capabilities are not empty: children clear
     * them (else nothing can have put any there). */
    bool ambient;
    bool devices_mount_point; /* /dev is a mount point */
    bool devices_nodev;       /* the host mounted /dev nodev itself */
} host = {.zygote_pidfd = -1};

void sandbox_init(void)
{
    host.zygote_pid = getpid();
    host.zygote_pidfd = (int)syscall(SYS_pidfd_open, host.zygote_pid, 0);
    host.euid = geteuid();
    host.egid = getegid();
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{0}};
    host.privileged = syscall(SYS_capget, &header, data) == 0 &&
                      (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32)));
    /* setns() into a mount namespace takes CAP_SYS_CHROOT as well. */
    host.can_join_mounts = host.privileged &&
                           (data[CAP_SYS_CHROOT / 32].effective & (1u << (CAP_SYS_CHROOT % 32)));
    host.cap_last = CAP_LAST_CAP;
    FILE *file = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (file != NULL) {
        int last;
        if (fscanf(file, "%d", &last) == 1 && last > 0 && last < 64)
            host.cap_last = last;
        fclose(file);
    }
    host.landlock_abi = landlock_abi();
    if (host.landlock_abi > 0 && landlock_open_common(&host.landlock) == -1) {
        worker_log("Landlock is off: cannot open / or /dev/null: %s", strerror(errno));
        host.landlock_abi = 0;
    }
    file = fopen("/proc/self/status", "re");
    char line[256];
    while (file != NULL && fgets(line, sizeof line, file) != NULL) {
        if (strncmp(line, "CapAmb:", 7) == 0)
            host.ambient = strtoull(line + 7, NULL, 16) != 0;
    }
    if (file != NULL)
        fclose(file);
    struct statx status;
    host.devices_mount_point =
        statx(AT_FDCWD, "/dev", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &status) == 0 &&
        (status.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
        (status.stx_attributes & STATX_ATTR_MOUNT_ROOT);
    struct statvfs devices;
    host.devices_nodev = statvfs("/dev", &devices) == 0 && (devices.f_flag & ST_NODEV);
}

/* Planning, in the zygote. */

__attribute__((format(printf, 2, 3))) static void set_problem(struct sandbox_plan *plan,
                                                              const char *format, ...)
{
    if (plan->problem != NULL)
        return;
    va_list arguments;
    va_start(arguments, format);
    plan->problem = xvasprintf(format, arguments);
    va_end(arguments);
}

/* True when `path` is `parent` or beneath it. */
static bool covers(const char *parent, const char *path)
{
    size_t length = strlen(parent);
    if (length == 1 && parent[0] == '/')
        return true;
    return strncmp(parent, path, length) == 0 && (path[length] == '\0' || path[length] == '/');
}

static bool is_directory(const char *path)
{
    struct stat status;
    return stat(path, &status) == 0 && S_ISDIR(status.st_mode);
}

/* Checks the paths of one list and drops their trailing slashes (the
 * strings are the stage's own). */
static void check_paths(struct sandbox_plan *plan, const char *what,
                        const struct stage_list *list)
{
    for (uint32_t i = 0; i < list->count; i++) {
        char *path = (char *)list->items[i];
        size_t length = strlen(path);
        while (length > 1 && path[length - 1] == '/')
            path[--length] = '\0';
        if (path[0] != '/')
            set_problem(plan, "sandbox: %s path \"%s\" is not absolute", what, path);
        else if (strstr(path, "/../") != NULL ||
                 (length >= 3 && strcmp(path + length - 3, "/..") == 0))
            set_problem(plan, "sandbox: %s path \"%s\" contains \"..\"", what, path);
    }
}

static void add_step(struct sandbox_plan *plan, enum mount_kind kind, const char *path)
{
    plan->steps[plan->step_count++] = (struct mount_step){
        .kind = kind, .path = path, .tree = -1, .directory = true, .parent = -1};
}

/* Orders the mounts: parents before what is beneath them (a path is
 * longer than its parents), and on one path by kind. */
static void sort_steps(struct sandbox_plan *plan)
{
    for (uint32_t i = 1; i < plan->step_count; i++) {
        struct mount_step step = plan->steps[i];
        size_t length = strlen(step.path);
        uint32_t j = i;
        while (j > 0) {
            const struct mount_step *before = &plan->steps[j - 1];
            size_t before_length = strlen(before->path);
            if (before_length < length || (before_length == length && before->kind <= step.kind))
                break;
            plan->steps[j] = plan->steps[j - 1];
            j--;
        }
        plan->steps[j] = step;
    }
}

/* Whether the step makes a file system of its own, in which the mount
 * points of the steps beneath it must be made. */
static bool creates_file_system(const struct mount_step *step)
{
    return step->kind == MOUNT_TMP || step->kind == MOUNT_VAR_TMP ||
           (step->kind == MOUNT_HIDDEN && step->directory);
}

/* Drops the hidden paths that a file system the sandbox creates covers
 * already, with nothing of the host's mounted between the two (the
 * daemon's files under a private /tmp, say): they are out of sight. Also
 * records which paths are directories. */
static void drop_covered_hidden(struct sandbox_plan *plan)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < plan->step_count; i++) {
        struct mount_step *step = &plan->steps[i];
        struct stat status;
        if (step->kind == MOUNT_HIDDEN || step->kind == MOUNT_READ_ONLY ||
            step->kind == MOUNT_WRITABLE)
            step->directory = stat(step->path, &status) != 0 || S_ISDIR(status.st_mode);
        bool covered = false;
        if (step->kind == MOUNT_HIDDEN) {
            /* The deepest step before it whose path holds it decides. */
            const struct mount_step *holder = NULL;
            for (uint32_t j = 0; j < kept; j++) {
                if (covers(plan->steps[j].path, step->path) &&
                    strcmp(plan->steps[j].path, step->path) != 0)
                    holder = &plan->steps[j];
            }
            covered = holder != NULL && creates_file_system(holder);
        }
        if (!covered)
            plan->steps[kept++] = *step;
    }
    plan->step_count = kept;
}

static void plan_mounts(struct sandbox_plan *plan, const struct stage_sandbox *sandbox)
{
    check_paths(plan, "read_only", &sandbox->read_only);
    check_paths(plan, "writable", &sandbox->writable);
    check_paths(plan, "hidden", &sandbox->hidden);
    for (uint32_t i = 0; i < sandbox->writable.count; i++) {
        if (strcmp(sandbox->writable.items[i], "/") == 0)
            set_problem(plan, "sandbox: \"/\" cannot be writable; list the directories to write to");
    }
    for (uint32_t i = 0; i < sandbox->hidden.count; i++) {
        if (strcmp(sandbox->hidden.items[i], "/") == 0)
            set_problem(plan, "sandbox: \"/\" cannot be hidden");
    }

    /* A read-only parent of /dev makes it nodev too, and then not even
     * /dev/null can be opened: nodev is lifted from /dev again (unless
     * the host mounted it so, or it is hidden). */
    bool devices = false;
    for (uint32_t i = 0; i < sandbox->read_only.count; i++)
        devices = devices || covers(sandbox->read_only.items[i], "/dev");
    for (uint32_t i = 0; i < sandbox->hidden.count; i++)
        devices = devices && !covers(sandbox->hidden.items[i], "/dev");
    devices = devices && !host.devices_nodev;

    size_t capacity = (size_t)sandbox->read_only.count + sandbox->writable.count +
                      sandbox->hidden.count + 4;
    plan->steps = xcalloc(capacity, sizeof *plan->steps);
    for (uint32_t i = 0; i < sandbox->read_only.count; i++)
        add_step(plan, MOUNT_READ_ONLY, sandbox->read_only.items[i]);
    for (uint32_t i = 0; i < sandbox->writable.count; i++)
        add_step(plan, MOUNT_WRITABLE, sandbox->writable.items[i]);
    for (uint32_t i = 0; i < sandbox->hidden.count; i++)
        add_step(plan, MOUNT_HIDDEN, sandbox->hidden.items[i]);
    if (devices) {
        add_step(plan, MOUNT_DEVICES, "/dev");
        plan->bind_devices = !host.devices_mount_point;
    }
    if (sandbox->flags & TW_SANDBOX_PRIVATE_TMP) {
        plan->tmp = is_directory("/tmp");
        if (plan->tmp) {
            add_step(plan, MOUNT_TMP, "/tmp");
            if (is_directory("/var/tmp"))
                add_step(plan, MOUNT_VAR_TMP, "/var/tmp");
            uint64_t size = sandbox->tmp_size != 0 ? sandbox->tmp_size : 256ull << 20;
            plan->tmp_options = xasprintf("mode=1777,size=%llu", (unsigned long long)size);
        }
    }
    bool proc_hidden = false;
    for (uint32_t i = 0; i < sandbox->hidden.count; i++)
        proc_hidden = proc_hidden || covers(sandbox->hidden.items[i], "/proc");
    if (plan->pid_namespace && !proc_hidden)
        add_step(plan, MOUNT_PROC, "/proc");
    sort_steps(plan);

    drop_covered_hidden(plan);
    for (uint32_t i = 0; i < plan->step_count; i++) {
        struct mount_step *step = &plan->steps[i];
        if ((step->kind == MOUNT_READ_ONLY && strcmp(step->path, "/") != 0) ||
            step->kind == MOUNT_WRITABLE)
            step->tree = (int)plan->tree_count++;
        /* The deepest file system made earlier that holds this path. */
        for (uint32_t j = 0; j < i; j++) {
            if (creates_file_system(&plan->steps[j]) && covers(plan->steps[j].path, step->path) &&
                strcmp(plan->steps[j].path, step->path) != 0)
                step->parent = (int)j;
        }
    }
    for (uint32_t i = 0; i < plan->step_count; i++) {
        struct mount_step *step = &plan->steps[i];
        step->shareable = step->kind == MOUNT_HIDDEN && step->directory;
        for (uint32_t j = i + 1; j < plan->step_count && step->shareable; j++)
            step->shareable = plan->steps[j].parent != (int)i;
    }
}

static char *cell_key(const struct sandbox_plan *plan);

void sandbox_prepare(struct stage *stage)
{
    const struct stage_sandbox *sandbox = &stage->sandbox;
    if (!(sandbox->flags & TW_SANDBOX_ENABLED)) {
        stage->plan = NULL;
        return;
    }
    struct sandbox_plan *plan = xcalloc(1, sizeof *plan);
    stage->plan = plan;
    plan->shared_network_fd = -1;
    uint32_t flags = sandbox->flags;

    if (flags & TW_SANDBOX_NS_PID) {
        plan->clone_flags |= CLONE_NEWPID;
        plan->pid_namespace = true;
    }
    if (flags & TW_SANDBOX_NS_MOUNT) {
        plan->unshare_flags |= CLONE_NEWNS;
        plan->mounts = true;
    }
    if (flags & TW_SANDBOX_NS_IPC)
        plan->unshare_flags |= CLONE_NEWIPC;
    if (flags & TW_SANDBOX_NS_UTS)
        plan->unshare_flags |= CLONE_NEWUTS;
    bool wants_namespaces = plan->clone_flags != 0 || plan->unshare_flags != 0 ||
                            (flags & TW_SANDBOX_NETWORK_NONE);
    if (flags & TW_SANDBOX_NS_USER) {
        /* The namespace is made by clone(), and the child maps its own ids,
         * the only mapping it may write: inside ids to the worker's. For a
         * root worker that would make the microtask root outside (owner of
         * root's files), so a root worker refuses; it switches the
         * microtask to an unprivileged uid instead, which gives as much. */
        if (host.euid == 0)
            set_problem(plan, "sandbox: a user namespace is for a daemon that is not root; a root "
                              "daemon switches the microtask to an unprivileged uid instead");
        plan->user_namespace_first = true;
        plan->clone_flags |= CLONE_NEWUSER;
    } else if (!host.privileged && wants_namespaces) {
        set_problem(plan, "sandbox: this worker has no CAP_SYS_ADMIN (the daemon is not root), so "
                          "its namespaces need a user namespace, which the stage does not ask for");
    }
    if (!(flags & TW_SANDBOX_NS_USER) && !host.privileged &&
        ((sandbox->uid != TW_ID_UNCHANGED && sandbox->uid != host.euid) ||
         (sandbox->gid != TW_ID_UNCHANGED && sandbox->gid != host.egid)))
        set_problem(plan, "sandbox: switching to uid %u gid %u needs a root daemon",
                    sandbox->uid, sandbox->gid);

    if (flags & TW_SANDBOX_NETWORK_NONE) {
        if (plan->user_namespace_first) {
            /* A namespace made by this worker belongs to the worker's user
             * namespace, where the microtask (in a user namespace of its
             * own) has no privilege to join it: the microtask gets its own
             * network namespace instead, which costs more. */
            plan->unshare_flags |= CLONE_NEWNET;
            plan->own_network = true;
        } else {
            char *error;
            plan->shared_network_fd = netns_shared(&error);
            if (plan->shared_network_fd == -1) {
                set_problem(plan, "%s", error);
                free(error);
            }
        }
    }

    bool filesystem = sandbox->read_only.count > 0 || sandbox->writable.count > 0 ||
                      sandbox->hidden.count > 0 || (flags & TW_SANDBOX_PRIVATE_TMP);
    if (plan->mounts)
        plan_mounts(plan, sandbox);
    else if (filesystem)
        set_problem(plan, "sandbox: read_only, writable, hidden and a private /tmp need the mount "
                          "namespace, which the stage does not ask for");

    plan->landlock = (flags & TW_SANDBOX_LANDLOCK) && host.landlock_abi > 0;

    char *error;
    plan->filter = syscall_filter_acquire(sandbox->syscalls, &sandbox->allow_syscalls,
                                          &sandbox->deny_syscalls, &error);
    if (error != NULL) {
        set_problem(plan, "%s", error);
        free(error);
    }
    if (sandbox_cells_allowed(plan))
        plan->cell_key = cell_key(plan);
}

/* What a cell's mounts depend on: stages whose plans give the same key
 * (the runs of one job, mostly) share cells. */
static char *cell_key(const struct sandbox_plan *plan)
{
    size_t length = 64 + (plan->tmp_options != NULL ? strlen(plan->tmp_options) : 0);
    for (uint32_t i = 0; i < plan->step_count; i++)
        length += strlen(plan->steps[i].path) + 16;
    char *key = xmalloc(length);
    int at = snprintf(key, length, "%x %d %s\n", (unsigned)plan->unshare_flags, plan->bind_devices,
                      plan->tmp_options != NULL ? plan->tmp_options : "-");
    for (uint32_t i = 0; i < plan->step_count; i++)
        at += snprintf(key + at, length - (size_t)at, "%d %d %s\n", (int)plan->steps[i].kind,
                       plan->steps[i].directory, plan->steps[i].path);
    return key;
}

void sandbox_plan_free(struct sandbox_plan *plan)
{
    if (plan == NULL)
        return;
    cell_forget(plan);
    free(plan->cell_key);
    free(plan->problem);
    free(plan->steps);
    free(plan->tmp_options);
    syscall_filter_release(plan->filter);
    free(plan);
}

/* The kernel's struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2),
 * spelled out: <linux/sched.h> does not mix with glibc's <sched.h>. */
struct clone3_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};
_Static_assert(sizeof(struct clone3_args) == 88, "CLONE_ARGS_SIZE_VER2");

/* Cleared once clone3 turned out not to take CLONE_INTO_CGROUP. */
static bool clone_into_cgroup = true;

pid_t sandbox_clone(const struct sandbox_plan *plan, int cgroup_fd, int *join_cgroup_fd)
{
    unsigned long flags = plan != NULL ? plan->clone_flags : 0;
    if (cgroup_fd != -1 && clone_into_cgroup) {
        /* Like the clone below; the cgroup is joined as part of the
         * clone, so not even the child's first instruction runs outside. */
        struct clone3_args args = {
            .flags = (uint64_t)flags | CLONE_INTO_CGROUP,
            .exit_signal = SIGCHLD,
            .cgroup = (uint64_t)cgroup_fd,
        };
        pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        /* ENOSYS: no clone3 (before 5.3, or a seccomp filter hiding it);
         * E2BIG: a clone3 without the cgroup field (before 5.7). */
        if (pid != -1 || (errno != ENOSYS && errno != E2BIG))
            return pid;
        worker_log("clone3 cannot start a process in a cgroup (%s); microtasks move "
                   "themselves into theirs",
                   strerror(errno));
        clone_into_cgroup = false;
    }
    if (cgroup_fd != -1)
        *join_cgroup_fd = cgroup_fd;
    if (flags == 0)
        return fork();
    /* Like fork() (a NULL stack: the child runs on its copy of this one),
     * plus the namespaces. In a new pid namespace the child is its pid 1:
     * when it exits, the kernel kills whatever else lives in the
     * namespace (setsid'd, double-forked grandchildren included) and
     * waits for it, so nothing outlives the microtask. */
    return (pid_t)syscall(SYS_clone, SIGCHLD | flags, NULL, NULL, NULL, 0);
}

/* In the child. */

_Noreturn void sandbox_fail(const char *step, const char *path)
{
    const char *error = strerror(errno);
    struct iovec iov[] = {
        {(void *)"sandbox: ", 9},
        {(void *)step, strlen(step)},
        {(void *)" ", path != NULL ? 1 : 0},
        {(void *)(path != NULL ? path : ""), path != NULL ? strlen(path) : 0},
        {(void *)": ", 2},
        {(void *)error, strlen(error)},
        {(void *)"\n", 1},
    };
    (void)io_writev_all(STDERR_FILENO, iov, sizeof iov / sizeof iov[0]);
    _exit(CHILD_SETUP_FAILED);
}

static void write_file(const char *path, const char *text)
{
    int fd = (int)RETRY(open(path, O_WRONLY | O_CLOEXEC));
    if (fd == -1 || io_write_all(fd, text, strlen(text)) == -1)
        sandbox_fail("writing", path);
    close(fd);
}

/* Maps one uid and one gid of the user namespace the child is in: `inside`
 * is what the microtask sees, `outside` its id in the parent namespace
 * (the only one an unprivileged process may map). setgroups is denied
 * first, as the kernel requires of an unprivileged gid_map. */
static void map_ids(uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid)
{
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)inside_uid, (unsigned)outside_uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)inside_gid, (unsigned)outside_gid);
    write_file("/proc/self/gid_map", map);
}

static void set_mount_attributes(int dirfd, const char *path, unsigned flags, uint64_t set,
                                 uint64_t clear, const char *step, const char *shown)
{
    struct mount_attr attributes = {.attr_set = set, .attr_clr = clear};
    if (mount_setattr(dirfd, path, flags, &attributes, sizeof attributes) == -1)
        sandbox_fail(step, shown);
}

/* Makes the mount point of `step` in the file system a step before it
 * created (the directories up to it, then a directory or an empty file). */
static void make_mount_point(const struct mount_step *step)
{
    char path[PATH_MAX];
    size_t length = strlen(step->path);
    if (length >= sizeof path) {
        errno = ENAMETOOLONG;
        sandbox_fail("making the mount point of", step->path);
    }
    memcpy(path, step->path, length + 1);
    for (char *slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) == -1 && errno != EEXIST)
            sandbox_fail("making the mount point of", step->path);
        *slash = '/';
    }
    if (step->directory) {
        if (mkdir(path, 0755) == -1 && errno != EEXIST)
            sandbox_fail("making the mount point of", step->path);
        return;
    }
    int fd = (int)RETRY(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (fd == -1)
        sandbox_fail("making the mount point of", step->path);
    close(fd);
}

/* After step `index` made a file system: the mount points of the steps
 * that go in it. */
static void make_mount_points(const struct sandbox_plan *plan, uint32_t index)
{
    for (uint32_t i = index + 1; i < plan->step_count; i++) {
        if (plan->steps[i].parent == (int)index)
            make_mount_point(&plan->steps[i]);
    }
}

/* Covers a directory with an empty read-only tmpfs (with the mount points
 * of what goes beneath it), or a file with /dev/null, read-only and nodev,
 * so that it cannot even be opened. Nothing to hide where nothing is.
 * `*empty` is a hidden directory whose tmpfs is empty for good, which a
 * shareable step binds instead of making its own; NULL until one is. */
static void hide(const struct sandbox_plan *plan, uint32_t index, const char **empty)
{
    const struct mount_step *step = &plan->steps[index];
    if (!step->directory || (step->shareable && *empty != NULL)) {
        /* A read-only bind, of /dev/null over a file, of the empty tmpfs
         * over a directory. */
        if (mount(step->directory ? *empty : "/dev/null", step->path, NULL, MS_BIND, NULL) == -1) {
            if (errno == ENOENT)
                return;
            sandbox_fail("hidden", step->path);
        }
        set_mount_attributes(AT_FDCWD, step->path, 0,
                             MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                 MOUNT_ATTR_NOEXEC,
                             0, "hidden", step->path);
        return;
    }
    if (mount("tmpfs", step->path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, HIDDEN_OPTIONS) == -1) {
        if (errno == ENOENT)
            return;
        sandbox_fail("hidden", step->path);
    }
    make_mount_points(plan, index);
    set_mount_attributes(AT_FDCWD, step->path, 0, MOUNT_ATTR_RDONLY, 0, "hidden", step->path);
    if (step->shareable)
        *empty = step->path;
}

static void mount_all(const struct sandbox_plan *plan, bool cell)
{
    /* Nothing done here may reach the host's mount namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
        sandbox_fail("making the mounts private", NULL);
    if (plan->bind_devices && mount("/dev", "/dev", NULL, MS_BIND | MS_REC, NULL) == -1)
        sandbox_fail("binding", "/dev");

    /* Copies of the read-only and writable paths, taken before anything is
     * made read-only or covered, so they show the host's files and keep
     * the host's flags; nosuid (and nodev, but not beneath /dev) added,
     * and read-only for the read-only ones. */
    int trees_stack[16];
    int *trees = plan->tree_count <= 16 ? trees_stack : malloc(plan->tree_count * sizeof *trees);
    if (trees == NULL)
        sandbox_fail("allocating", NULL);
    for (uint32_t i = 0; i < plan->step_count; i++) {
        const struct mount_step *step = &plan->steps[i];
        if (step->tree < 0)
            continue;
        const char *what = step->kind == MOUNT_WRITABLE ? "writable" : "read_only";
        int tree = open_tree(AT_FDCWD, step->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree == -1)
            sandbox_fail(what, step->path);
        uint64_t set = MOUNT_ATTR_NOSUID | (covers("/dev", step->path) ? 0 : MOUNT_ATTR_NODEV);
        if (step->kind == MOUNT_READ_ONLY)
            set |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV;
        set_mount_attributes(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, set, 0, what, step->path);
        trees[step->tree] = tree;
    }

    const char *empty = NULL;
    for (uint32_t i = 0; i < plan->step_count; i++) {
        const struct mount_step *step = &plan->steps[i];
        switch (step->kind) {
        case MOUNT_TMP:
            /* One fresh tmpfs, on /tmp and bound on /var/tmp: a file
             * system costs ~15-40 µs to make and tear down, a bind a few.
             * The microtask sees the same files in both, and they are gone
             * with it either way. */
            if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, plan->tmp_options) == -1)
                sandbox_fail("private tmp", "/tmp");
            make_mount_points(plan, i);
            break;
        case MOUNT_VAR_TMP:
            if (mount("/tmp", "/var/tmp", NULL, MS_BIND, NULL) == -1)
                sandbox_fail("private tmp", "/var/tmp");
            make_mount_points(plan, i);
            break;
        case MOUNT_PROC:
            /* Read-only: a process whose uid is root (the stage keeps a
             * root daemon's identity) may write sysctls with no capability
             * at all. Without hidepid: every process in the namespace is
             * the microtask's, under one uid, so hiding them from each
             * other would protect nothing, but it would hide pid 1 (the
             * microtask's main process, which the switch away from root
             * left non-dumpable, and which stays so: it is a copy of the
             * zygote, and must not be readable by other processes of its
             * uid). */
            /* In a cell (cell.h), /proc is the zygote's pid namespace's,
             * shared by the microtasks that join the cell in turn, each
             * with a uid of its own: hidepid=invisible shows each one its
             * own processes only. */
            if (mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      cell ? "hidepid=invisible" : NULL) == -1)
                sandbox_fail("mounting", "/proc");
            break;
        case MOUNT_READ_ONLY:
            if (step->tree < 0) {
                /* "/" is the root mount of the namespace already. */
                set_mount_attributes(AT_FDCWD, "/", AT_RECURSIVE,
                                     MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0,
                                     "read_only", "/");
                break;
            }
            /* Attached as a writable copy is. */
            __attribute__((fallthrough));
        case MOUNT_WRITABLE:
            if (move_mount(trees[step->tree], "", AT_FDCWD, step->path, MOVE_MOUNT_F_EMPTY_PATH) == -1)
                sandbox_fail(step->kind == MOUNT_WRITABLE ? "writable" : "read_only", step->path);
            close(trees[step->tree]);
            break;
        case MOUNT_DEVICES:
            /* /dev itself only: its submounts (/dev/pts, /dev/shm) keep
             * nodev, some of them from the host, which a user namespace
             * could not lift anyway. So no pseudo-terminals. */
            set_mount_attributes(AT_FDCWD, "/dev", 0, 0, MOUNT_ATTR_NODEV, "lifting nodev from",
                                 "/dev");
            break;
        case MOUNT_HIDDEN:
            hide(plan, i, &empty);
            break;
        }
    }
    if (trees != trees_stack)
        free(trees);
}

bool sandbox_cells_allowed(const struct sandbox_plan *plan)
{
    return plan->problem == NULL && host.can_join_mounts && !plan->user_namespace_first &&
           plan->mounts && plan->pid_namespace && !plan->own_network;
}

bool sandbox_cell_has_uts(const struct sandbox_plan *plan)
{
    return (plan->unshare_flags & CLONE_NEWUTS) != 0;
}

bool sandbox_cell_has_tmp(const struct sandbox_plan *plan)
{
    return plan->tmp;
}

void sandbox_make_cell(const struct sandbox_plan *plan)
{
    if (unshare(CLONE_NEWNS | (plan->unshare_flags & CLONE_NEWUTS)) == -1)
        sandbox_fail("unshare", NULL);
    mount_all(plan, true);
}

void sandbox_enter(const struct stage *stage, const struct cell *cell)
{
    const struct sandbox_plan *plan = stage->plan;
    const struct stage_sandbox *sandbox = &stage->sandbox;
    if (plan->user_namespace_first)
        map_ids(sandbox->uid != TW_ID_UNCHANGED ? sandbox->uid : host.euid, host.euid,
                sandbox->gid != TW_ID_UNCHANGED ? sandbox->gid : host.egid, host.egid);
    if (plan->shared_network_fd != -1 && setns(plan->shared_network_fd, CLONE_NEWNET) == -1)
        sandbox_fail("joining the empty network namespace", NULL);
    if (cell != NULL) {
        /* The mounts and the host name are the cell's; the IPC namespace
         * (System V objects and POSIX message queues, which would outlive
         * the microtask) is its own. */
        cell_enter(cell);
        int own = plan->unshare_flags & ~(CLONE_NEWNS | CLONE_NEWUTS);
        if (own != 0 && unshare(own) == -1)
            sandbox_fail("unshare", NULL);
        if (chdir("/") == -1)
            sandbox_fail("chdir", "/");
        return;
    }
    if (plan->unshare_flags != 0 && unshare(plan->unshare_flags) == -1)
        sandbox_fail("unshare", NULL);
    if (plan->own_network && netns_loopback_up() == -1)
        sandbox_fail("bringing up", "lo");
    if (plan->mounts) {
        mount_all(plan, false);
        /* The working directory was the daemon's, and a path beneath a
         * mount made here would still reach the host's files. */
        if (chdir("/") == -1)
            sandbox_fail("chdir", "/");
    }
}

static void drop_bounding_set(void)
{
    for (int cap = 0; cap <= host.cap_last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == -1 && errno != EINVAL)
            sandbox_fail("dropping the capability bounding set", NULL);
    }
}

void sandbox_drop_privileges(const struct stage *stage, uint32_t dynamic_id)
{
    const struct sandbox_plan *plan = stage->plan;
    struct stage_sandbox identity = stage->sandbox;
    if (dynamic_id != TW_ID_UNCHANGED)
        identity.uid = identity.gid = dynamic_id;
    const struct stage_sandbox *sandbox = &identity;
    /* Dropping from the bounding set takes CAP_SETPCAP, which is gone
     * after a switch away from uid 0. A worker without privileges (and no
     * user namespace) has no capability to lose, and no_new_privs keeps
     * it from gaining any.
     *
     * The bounding set only caps what execve() may add to the permitted
     * set (capabilities(7)): from file capabilities, which no_new_privs
     * ignores, and from the inheritable and ambient sets, which are
     * emptied below. For a microtask that ends up as a non-root uid it can
     * therefore never matter, and emptying it costs 41 prctl() calls a
     * microtask (about 40 µs on the development VM, where credential
     * changes are traced): it is emptied only for a microtask that stays
     * uid 0, where execve() of a set-uid-root binary is the case it
     * guards. */
    bool capable = host.privileged || plan->user_namespace_first;
    uint32_t final_uid = sandbox->uid != TW_ID_UNCHANGED ? sandbox->uid : host.euid;
    if (capable && (final_uid == 0 || plan->user_namespace_first))
        drop_bounding_set();

    bool switching = sandbox->uid != TW_ID_UNCHANGED || sandbox->gid != TW_ID_UNCHANGED;
    /* Supplementary groups cannot be set in a user namespace whose
     * setgroups is denied; they are the daemon's there, shown as nogroup. */
    if (switching && !plan->user_namespace_first && capable && setgroups(0, NULL) == -1)
        sandbox_fail("setgroups", NULL);
    if (sandbox->gid != TW_ID_UNCHANGED &&
        setresgid(sandbox->gid, sandbox->gid, sandbox->gid) == -1)
        sandbox_fail("setresgid", NULL);
    if (sandbox->uid != TW_ID_UNCHANGED &&
        setresuid(sandbox->uid, sandbox->uid, sandbox->uid) == -1)
        sandbox_fail("setresuid", NULL);
    /* After the identity switch, which clears it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
        sandbox_fail("PR_SET_PDEATHSIG", NULL);
    if (plan->pid_namespace) {
        struct pollfd zygote = {.fd = host.zygote_pidfd, .events = POLLIN};
        if (host.zygote_pidfd != -1 && poll(&zygote, 1, 0) != 0)
            _exit(CHILD_SETUP_FAILED);
    } else if (getppid() != host.zygote_pid) {
        _exit(CHILD_SETUP_FAILED);
    }

    if (host.ambient && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == -1 &&
        errno != EINVAL)
        sandbox_fail("clearing the ambient capabilities", NULL);
    /* A switch away from uid 0 has emptied the sets already; then there
     * is nothing to commit. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2] = {{0}};
    bool any = syscall(SYS_capget, &header, caps) == -1;
    for (int i = 0; i < 2 && !any; i++)
        any = caps[i].effective != 0 || caps[i].permitted != 0 || caps[i].inheritable != 0;
    struct __user_cap_data_struct none[2] = {{0}};
    if (any && syscall(SYS_capset, &header, none) == -1)
        sandbox_fail("dropping capabilities", NULL);
}

void sandbox_landlock(const struct stage *stage)
{
    if (!stage->plan->landlock)
        return;
    const char *step;
    if (landlock_restrict(host.landlock_abi, &host.landlock, &stage->sandbox, stage->plan->tmp,
                          &step) == -1)
        sandbox_fail("landlock", step);
}

void sandbox_seccomp(const struct stage *stage)
{
    if (stage->plan->filter != NULL && syscall_filter_load(stage->plan->filter) == -1)
        sandbox_fail("seccomp", NULL);
}
