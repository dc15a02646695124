/*
 * landlock.c - a Landlock ruleset per microtask, with raw system calls (no
 * library, and no reliance on the build machine's kernel headers: the
 * constants of every ABI are written out here).
 */
#define _GNU_SOURCE
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define CREATE_RULESET_VERSION (1u << 0)
#define RULE_PATH_BENEATH 1

/* Filesystem rights, by the ABI that introduced them. */
#define FS_EXECUTE (1ull << 0)
#define FS_WRITE_FILE (1ull << 1)
#define FS_READ_FILE (1ull << 2)
#define FS_READ_DIR (1ull << 3)
#define FS_ABI1 ((1ull << 13) - 1) /* EXECUTE ... MAKE_SYM */
#define FS_REFER (1ull << 13)      /* ABI 2 */
#define FS_TRUNCATE (1ull << 14)   /* ABI 3 */
#define FS_IOCTL_DEV (1ull << 15)  /* ABI 5 */
/* Rights that apply to files that are not directories. */
#define FS_FILE_RIGHTS (FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV)

/* Scopes (ABI 6). */
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define SCOPE_SIGNAL (1ull << 1)

struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

struct path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}

static uint64_t handled_rights(int abi)
{
    uint64_t rights = FS_ABI1;
    if (abi >= 2)
        rights |= FS_REFER;
    if (abi >= 3)
        rights |= FS_TRUNCATE;
    if (abi >= 5)
        rights |= FS_IOCTL_DEV;
    return rights;
}

/* Grants `rights` beneath the directory `fd` or on the file `fd`. */
static int allow_fd(int ruleset, int fd, bool directory, uint64_t rights, uint64_t handled)
{
    if (!directory)
        rights &= FS_FILE_RIGHTS;
    struct path_beneath_attr rule = {.allowed_access = rights & handled, .parent_fd = fd};
    return syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, &rule, 0) == -1 ? -1 : 0;
}

/* Grants `rights` beneath `path` (or on it, for a file). A path that does
 * not exist is skipped: there is nothing there to grant. */
static int allow_path(int ruleset, const char *path, uint64_t rights, uint64_t handled)
{
    int fd = (int)RETRY(open(path, O_PATH | O_CLOEXEC));
    if (fd == -1)
        return errno == ENOENT ? 0 : -1;
    struct stat status;
    bool directory = fstat(fd, &status) == 0 && S_ISDIR(status.st_mode);
    int result = allow_fd(ruleset, fd, directory, rights, handled);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int landlock_open_common(struct landlock_common *common)
{
    common->root_fd = (int)RETRY(open("/", O_PATH | O_CLOEXEC | O_DIRECTORY));
    common->null_fd = (int)RETRY(open("/dev/null", O_PATH | O_CLOEXEC));
    return common->root_fd == -1 || common->null_fd == -1 ? -1 : 0;
}

int landlock_restrict(int abi, const struct landlock_common *common,
                      const struct stage_sandbox *sandbox, bool private_tmp, const char **step)
{
    if (abi <= 0)
        return 0;
    uint64_t handled = handled_rights(abi);
    struct ruleset_attr attr = {.handled_access_fs = handled};
    size_t attr_size = sizeof attr.handled_access_fs;
    if (abi >= 6) {
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
        attr_size = sizeof attr;
    }
    *step = "creating the ruleset";
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset == -1)
        return -1;

    int result = 0;
    *step = "/";
    result = allow_fd(ruleset, common->root_fd, true, FS_READ_FILE | FS_READ_DIR | FS_EXECUTE,
                      handled);
    if (result == 0) {
        *step = "/dev/null";
        result = allow_fd(ruleset, common->null_fd, false,
                          FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV, handled);
    }
    for (uint32_t i = 0; i < sandbox->writable.count && result == 0; i++) {
        *step = sandbox->writable.items[i];
        result = allow_path(ruleset, sandbox->writable.items[i], handled, handled);
    }
    /* /var/tmp is the same file system (sandbox.c): one rule covers both. */
    if (private_tmp && result == 0) {
        *step = "/tmp";
        result = allow_path(ruleset, "/tmp", handled, handled);
    }
    if (result == 0) {
        *step = "restrict_self";
        result = (int)syscall(SYS_landlock_restrict_self, ruleset, 0);
    }
    int saved = errno;
    close(ruleset);
    errno = saved;
    return result == -1 ? -1 : 0;
}
