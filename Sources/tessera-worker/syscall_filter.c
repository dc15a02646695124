/*
 * syscall_filter.c - compiling the seccomp profiles with libseccomp, once
 * per distinct combination, and loading them in the child.
 *
 * A filter is first written down as a list of rules (syscall number,
 * action, and for a few calls a condition on an argument); the stage's
 * allow and deny lists edit that list; libseccomp turns it into BPF, which
 * is exported through a memfd and kept as a struct sock_fprog.
 *
 * Argument conditions compare the low 32 bits only (masked comparisons),
 * because the kernel reads those arguments (ioctl's request, personality's
 * persona) as 32-bit values: a comparison on all 64 bits could be dodged
 * by setting high bits the kernel ignores.
 *
 * Size matters: the kernel translates and JIT-compiles the program again
 * in every process that installs it, about 13 µs plus 0.25 µs an
 * instruction here. So the DEFAULT program is built as a binary tree of
 * syscall numbers (~100 instructions), and personality()'s "only these
 * five values", which libseccomp can only write as ~32 rules (~100
 * instructions: it takes one comparison per argument and rule, and no
 * "not one of"), is a hand-written prefix of 12 instructions instead.
 */
#define _GNU_SOURCE
#include "syscall_filter.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <tessera_wire.h>
#include <unistd.h>

#include "io.h"

/* Conditions a rule may carry. */
enum condition {
    ALWAYS,
    /* ioctl(fd, TIOCSTI or TIOCLINUX, ...): faking terminal input */
    IOCTL_TERMINAL_INPUT,
    /* clone(flags, ...) with any CLONE_NEW* flag in `flags` */
    CLONE_NAMESPACES,
    /* personality(p) unless p is 0, PER_LINUX32, UNAME26 (with either), or
     * 0xffffffff (a query) */
    PERSONALITY_CHANGE,
    /* prlimit64(pid, resource, new_limit, old_limit) with a new limit:
     * used with ALLOW for NULL new limits (reading only) */
    PRLIMIT_READ_ONLY
};

struct rule {
    int number;
    uint32_t action;
    enum condition condition;
};

struct rule_list {
    struct rule *rules;
    size_t count;
    size_t capacity;
};

/* The calls the DEFAULT profile denies, and how. */
static const struct {
    const char *name;
    enum condition condition;
    int error;
} default_denied[] = {
    /* other processes */
    {"ptrace", ALWAYS, EPERM},
    {"process_vm_readv", ALWAYS, EPERM},
    {"process_vm_writev", ALWAYS, EPERM},
    {"pidfd_getfd", ALWAYS, EPERM},
    /* the kernel itself */
    {"kexec_load", ALWAYS, EPERM},
    {"kexec_file_load", ALWAYS, EPERM},
    {"init_module", ALWAYS, EPERM},
    {"finit_module", ALWAYS, EPERM},
    {"delete_module", ALWAYS, EPERM},
    {"bpf", ALWAYS, EPERM},
    {"perf_event_open", ALWAYS, EPERM},
    {"userfaultfd", ALWAYS, EPERM},
    {"io_uring_setup", ALWAYS, EPERM},
    {"io_uring_enter", ALWAYS, EPERM},
    {"io_uring_register", ALWAYS, EPERM},
    {"uselib", ALWAYS, EPERM},
    {"iopl", ALWAYS, EPERM},
    {"ioperm", ALWAYS, EPERM},
    {"syslog", ALWAYS, EPERM},
    {"lookup_dcookie", ALWAYS, EPERM},
    {"acct", ALWAYS, EPERM},
    {"swapon", ALWAYS, EPERM},
    {"swapoff", ALWAYS, EPERM},
    {"reboot", ALWAYS, EPERM},
    {"quotactl", ALWAYS, EPERM},
    {"quotactl_fd", ALWAYS, EPERM},
    /* keyrings */
    {"add_key", ALWAYS, EPERM},
    {"request_key", ALWAYS, EPERM},
    {"keyctl", ALWAYS, EPERM},
    /* clocks */
    {"settimeofday", ALWAYS, EPERM},
    {"clock_settime", ALWAYS, EPERM},
    {"adjtimex", ALWAYS, EPERM},
    {"clock_adjtime", ALWAYS, EPERM},
    /* the filesystem tree and namespaces */
    {"mount", ALWAYS, EPERM},
    {"umount2", ALWAYS, EPERM},
    {"pivot_root", ALWAYS, EPERM},
    {"move_mount", ALWAYS, EPERM},
    {"open_tree", ALWAYS, EPERM},
    {"fsopen", ALWAYS, EPERM},
    {"fsmount", ALWAYS, EPERM},
    {"fsconfig", ALWAYS, EPERM},
    {"fspick", ALWAYS, EPERM},
    {"mount_setattr", ALWAYS, EPERM},
    {"open_by_handle_at", ALWAYS, EPERM},
    {"name_to_handle_at", ALWAYS, EPERM},
    {"unshare", ALWAYS, EPERM},
    {"setns", ALWAYS, EPERM},
    {"clone", CLONE_NAMESPACES, EPERM},
    {"clone3", ALWAYS, ENOSYS},
    /* terminals and execution domains */
    {"ioctl", IOCTL_TERMINAL_INPUT, EPERM},
    {"vhangup", ALWAYS, EPERM},
    {"personality", PERSONALITY_CHANGE, EPERM},
};

/* The calls the COMPUTE profile allows; prlimit64 (reading only) and
 * clone3 (ENOSYS) are added separately. */
static const char *const compute_allowed[] = {
    "read",          "write",         "readv",           "writev",
    "pread64",       "pwrite64",      "close",           "fstat",
    "newfstatat",    "lseek",         "mmap",            "munmap",
    "mremap",        "mprotect",      "madvise",         "brk",
    "rt_sigaction",  "rt_sigprocmask", "rt_sigreturn",   "sigaltstack",
    "exit",          "exit_group",    "futex",           "clock_gettime",
    "clock_getres",  "clock_nanosleep", "nanosleep",     "gettimeofday",
    "time",          "getpid",        "gettid",          "getrandom",
    "sched_yield",   "getrlimit",     "set_robust_list", "rseq",
    "restart_syscall", "getuid",      "geteuid",         "getgid",
    "getegid",
    /* raise() and abort() signal the caller */
    "tgkill",
};

static const uint64_t clone_namespace_flags[] = {
    CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,   CLONE_NEWNET,
};

struct syscall_filter {
    struct syscall_filter *next;
    unsigned references;
    /* The key: the profile and the two lists as the stage sent them. */
    uint8_t profile;
    char **allow;
    uint32_t allow_count;
    char **deny;
    uint32_t deny_count;
    struct sock_fprog program;
};

static struct syscall_filter *cache;

static void rules_add(struct rule_list *list, int number, uint32_t action,
                      enum condition condition)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 64;
        list->rules = xrealloc(list->rules, list->capacity * sizeof *list->rules);
    }
    list->rules[list->count++] = (struct rule){number, action, condition};
}

static void rules_remove(struct rule_list *list, int number)
{
    size_t kept = 0;
    for (size_t i = 0; i < list->count; i++) {
        if (list->rules[i].number != number)
            list->rules[kept++] = list->rules[i];
    }
    list->count = kept;
}

static bool listed(const int *numbers, uint32_t count, int number)
{
    for (uint32_t i = 0; i < count; i++) {
        if (numbers[i] == number)
            return true;
    }
    return false;
}

/* Resolves the names of a list; on an unknown one, sets *error and returns
 * NULL. Names of calls that exist on other architectures only resolve to
 * negative numbers, which libseccomp ignores for this one. */
static int *resolve_names(const struct stage_list *names, char **error)
{
    int *numbers = xcalloc(names->count ? names->count : 1, sizeof *numbers);
    for (uint32_t i = 0; i < names->count; i++) {
        numbers[i] = seccomp_syscall_resolve_name(names->items[i]);
        if (numbers[i] == __NR_SCMP_ERROR) {
            *error = xasprintf("unknown syscall name \"%s\"", names->items[i]);
            free(numbers);
            return NULL;
        }
    }
    return numbers;
}

/* Resolves a name of the built-in tables; those the running libseccomp
 * does not know, or that do not exist here, are skipped (-1). */
static int builtin_number(const char *name)
{
    int number = seccomp_syscall_resolve_name(name);
    return number < 0 ? -1 : number;
}

/* Writes down the profile, then applies the allow and deny lists. */
static void build_rules(uint8_t profile, const int *allow, uint32_t allow_count,
                        const int *deny, uint32_t deny_count, struct rule_list *rules)
{
    if (profile == TW_SYSCALLS_COMPUTE) {
        for (size_t i = 0; i < sizeof compute_allowed / sizeof compute_allowed[0]; i++) {
            int number = builtin_number(compute_allowed[i]);
            if (number >= 0)
                rules_add(rules, number, SCMP_ACT_ALLOW, ALWAYS);
        }
        int prlimit = builtin_number("prlimit64");
        if (prlimit >= 0 && !listed(allow, allow_count, prlimit))
            rules_add(rules, prlimit, SCMP_ACT_ALLOW, PRLIMIT_READ_ONLY);
        int clone3 = builtin_number("clone3");
        if (clone3 >= 0 && !listed(allow, allow_count, clone3))
            rules_add(rules, clone3, SCMP_ACT_ERRNO(ENOSYS), ALWAYS);
        for (uint32_t i = 0; i < allow_count; i++) {
            rules_remove(rules, allow[i]);
            rules_add(rules, allow[i], SCMP_ACT_ALLOW, ALWAYS);
        }
        /* Denied names fall to the default action (EPERM). */
        for (uint32_t i = 0; i < deny_count; i++)
            rules_remove(rules, deny[i]);
        return;
    }

    if (profile == TW_SYSCALLS_DEFAULT) {
        for (size_t i = 0; i < sizeof default_denied / sizeof default_denied[0]; i++) {
            int number = builtin_number(default_denied[i].name);
            if (number >= 0 && !listed(allow, allow_count, number))
                rules_add(rules, number, SCMP_ACT_ERRNO((uint32_t)default_denied[i].error),
                          default_denied[i].condition);
        }
    }
    for (uint32_t i = 0; i < deny_count; i++) {
        rules_remove(rules, deny[i]);
        rules_add(rules, deny[i], SCMP_ACT_ERRNO(EPERM), ALWAYS);
    }
}

/* Adds one rule to the libseccomp context. Returns 0 or a negative errno. */
static int add_rule(scmp_filter_ctx context, const struct rule *rule)
{
    int result = 0;
    switch (rule->condition) {
    case ALWAYS:
        return seccomp_rule_add(context, rule->action, rule->number, 0);
    case IOCTL_TERMINAL_INPUT: {
        static const uint64_t requests[] = {TIOCSTI, TIOCLINUX};
        for (size_t i = 0; i < 2 && result == 0; i++)
            result = seccomp_rule_add(context, rule->action, rule->number, 1,
                                      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, requests[i]));
        return result;
    }
    case CLONE_NAMESPACES:
        /* clone's flags are its first argument on x86_64 (and most
         * architectures; s390 swaps the first two). */
        for (size_t i = 0;
             i < sizeof clone_namespace_flags / sizeof clone_namespace_flags[0] && result == 0;
             i++)
            result = seccomp_rule_add(
                context, rule->action, rule->number, 1,
                SCMP_A0(SCMP_CMP_MASKED_EQ, clone_namespace_flags[i], clone_namespace_flags[i]));
        return result;
    case PERSONALITY_CHANGE:
        return 0; /* the hand-written prefix, see personality_prefix() */
    case PRLIMIT_READ_ONLY:
        return seccomp_rule_add(context, rule->action, rule->number, 1,
                                SCMP_A2(SCMP_CMP_EQ, 0, 0));
    }
    return -EINVAL;
}

/* The personality values a DEFAULT filter lets through: PER_LINUX,
 * PER_LINUX32, either with UNAME26, and 0xffffffff, which only queries. */
static const uint32_t personality_allowed[] = {0, 0x0008, 0x20000, 0x20008, 0xffffffffu};
#define PREFIX_LENGTH 12

/* Writes the prefix that decides personality() calls of the native
 * architecture by themselves and lets everything else through to
 * libseccomp's program (which checks the architecture again, and kills
 * on a foreign one). Returns false when the architecture is not known. */
static bool personality_prefix(struct sock_filter prefix[PREFIX_LENGTH])
{
    uint32_t arch = seccomp_arch_native();
    int number = seccomp_syscall_resolve_name("personality");
    if (arch == 0 || number < 0)
        return false;
    /* The kernel reads the persona as an unsigned int: the low word. */
    uint32_t low_word = offsetof(struct seccomp_data, args[0]) +
                        (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0);
    enum { DENY = PREFIX_LENGTH - 2, ALLOW = PREFIX_LENGTH - 1, REST = PREFIX_LENGTH };
    /* The number first: every other call leaves after two instructions
     * (the kernel runs the program for each syscall number when it
     * installs it, to find those it can allow without running it). */
    size_t at = 0;
    prefix[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                offsetof(struct seccomp_data, nr));
    prefix[at] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)number, 0,
                                              (uint8_t)(REST - at - 1));
    at++;
    prefix[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                offsetof(struct seccomp_data, arch));
    prefix[at] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0,
                                              (uint8_t)(REST - at - 1));
    at++;
    prefix[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, low_word);
    for (size_t i = 0; i < sizeof personality_allowed / sizeof personality_allowed[0]; i++) {
        prefix[at] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                  personality_allowed[i],
                                                  (uint8_t)(ALLOW - at - 1), 0);
        at++;
    }
    prefix[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    prefix[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    return at == PREFIX_LENGTH;
}

/* Compiles the rules and reads the BPF back. Returns 0, or -1 with a reason
 * in *error. */
static int compile(uint8_t profile, const struct rule_list *rules, struct sock_fprog *program,
                   char **error)
{
    uint32_t default_action =
        profile == TW_SYSCALLS_COMPUTE ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_ALLOW;
    scmp_filter_ctx context = seccomp_init(default_action);
    if (context == NULL) {
        *error = xstrdup("seccomp: libseccomp cannot create a filter");
        return -1;
    }
    const char *step = "setting its attributes";
    int result = seccomp_attr_set(context, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (result == 0) /* a binary tree of syscall numbers, not a linear scan */
        result = seccomp_attr_set(context, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t i = 0; i < rules->count && result == 0; i++) {
        step = "adding a rule";
        result = add_rule(context, &rules->rules[i]);
        if (result != 0) {
            char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rules->rules[i].number);
            *error = xasprintf("seccomp: cannot add the rule for %s: %s",
                               name ? name : "?", strerror(-result));
            free(name);
            seccomp_release(context);
            return -1;
        }
    }
    int memfd = -1;
    if (result == 0) {
        step = "exporting it";
        memfd = memfd_create("tessera-seccomp", MFD_CLOEXEC);
        result = memfd == -1 ? -errno : seccomp_export_bpf(context, memfd);
    }
    seccomp_release(context);
    bool prefixed = false;
    for (size_t i = 0; i < rules->count; i++)
        prefixed = prefixed || rules->rules[i].condition == PERSONALITY_CHANGE;
    struct sock_filter prefix[PREFIX_LENGTH];
    if (prefixed && !personality_prefix(prefix))
        result = -EINVAL;
    size_t skip = prefixed ? PREFIX_LENGTH : 0;
    off_t size = 0;
    if (result == 0) {
        size = lseek(memfd, 0, SEEK_END);
        if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
            size / (off_t)sizeof(struct sock_filter) + (off_t)skip > BPF_MAXINSNS)
            result = -EINVAL;
    }
    if (result == 0) {
        program->filter = xmalloc((size_t)size + skip * sizeof(struct sock_filter));
        program->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter) + (off_t)skip);
        memcpy(program->filter, prefix, skip * sizeof(struct sock_filter));
        if (RETRY(pread(memfd, program->filter + skip, (size_t)size, 0)) != size) {
            result = -EIO;
            free(program->filter);
            program->filter = NULL;
        }
    }
    if (memfd != -1)
        close(memfd);
    if (result != 0) {
        *error = xasprintf("seccomp: %s: %s", step, strerror(-result));
        return -1;
    }
    return 0;
}

static bool same_list(char **names, uint32_t count, const struct stage_list *list)
{
    if (count != list->count)
        return false;
    for (uint32_t i = 0; i < count; i++) {
        if (strcmp(names[i], list->items[i]) != 0)
            return false;
    }
    return true;
}

static char **copy_list(const struct stage_list *list)
{
    char **copy = xcalloc(list->count ? list->count : 1, sizeof *copy);
    for (uint32_t i = 0; i < list->count; i++)
        copy[i] = xstrdup(list->items[i]);
    return copy;
}

static void free_list(char **names, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

struct syscall_filter *syscall_filter_acquire(uint8_t profile, const struct stage_list *allow,
                                              const struct stage_list *deny, char **error)
{
    *error = NULL;
    if (profile != TW_SYSCALLS_NONE && profile != TW_SYSCALLS_DEFAULT &&
        profile != TW_SYSCALLS_COMPUTE) {
        *error = xasprintf("unknown syscall profile %u", profile);
        return NULL;
    }
    for (struct syscall_filter *filter = cache; filter != NULL; filter = filter->next) {
        if (filter->profile == profile && same_list(filter->allow, filter->allow_count, allow) &&
            same_list(filter->deny, filter->deny_count, deny)) {
            filter->references++;
            return filter;
        }
    }

    int *allowed = resolve_names(allow, error);
    if (allowed == NULL)
        return NULL;
    int *denied = resolve_names(deny, error);
    if (denied == NULL) {
        free(allowed);
        return NULL;
    }
    if (profile == TW_SYSCALLS_NONE && deny->count == 0) {
        free(allowed);
        free(denied);
        return NULL;
    }
    struct rule_list rules = {0};
    build_rules(profile, allowed, allow->count, denied, deny->count, &rules);
    free(allowed);
    free(denied);
    struct sock_fprog program = {0};
    int result = compile(profile, &rules, &program, error);
    free(rules.rules);
    if (result != 0)
        return NULL;

    struct syscall_filter *filter = xcalloc(1, sizeof *filter);
    filter->references = 1;
    filter->profile = profile;
    filter->allow = copy_list(allow);
    filter->allow_count = allow->count;
    filter->deny = copy_list(deny);
    filter->deny_count = deny->count;
    filter->program = program;
    filter->next = cache;
    cache = filter;
    return filter;
}

static void free_filter(struct syscall_filter *filter)
{
    free_list(filter->allow, filter->allow_count);
    free_list(filter->deny, filter->deny_count);
    free(filter->program.filter);
    free(filter);
}

/* Filters no stage uses stay cached, up to this many: every run of a job
 * defines its stages again, and compiling a filter with libseccomp took a
 * few hundred µs of each short run. */
#define UNUSED_KEPT 16

void syscall_filter_release(struct syscall_filter *filter)
{
    if (filter == NULL || --filter->references > 0)
        return;
    /* The list is newest first: past UNUSED_KEPT unused ones, the oldest
     * unused one goes. */
    unsigned unused = 0;
    struct syscall_filter **oldest = NULL;
    for (struct syscall_filter **link = &cache; *link != NULL; link = &(*link)->next) {
        if ((*link)->references == 0) {
            unused++;
            oldest = link;
        }
    }
    if (unused > UNUSED_KEPT && oldest != NULL) {
        struct syscall_filter *gone = *oldest;
        *oldest = gone->next;
        free_filter(gone);
    }
}

int syscall_filter_load(const struct syscall_filter *filter)
{
    /* seccomp(2) rather than prctl(PR_SET_SECCOMP): the same, without
     * whatever the host hooks on prctl. */
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter->program);
}

unsigned syscall_filter_length(const struct syscall_filter *filter)
{
    return filter ? filter->program.len : 0;
}
