/*
 * landlock.h - the Landlock layer of the sandbox, with raw system calls.
 *
 * Best effort by the kernel's ABI: the ruleset handles every filesystem
 * right the running kernel knows (and, from ABI 6, scopes abstract Unix
 * sockets and signals to the microtask), so what the rules do not grant is
 * denied. Granted: read and execute beneath "/", everything beneath each
 * writable path and the private /tmp (and /var/tmp), read and write on
 * /dev/null. A kernel without Landlock is not an error: the microtask
 * runs without this layer (the daemon reports what the kernel has).
 */
#ifndef TESSERA_WORKER_LANDLOCK_H
#define TESSERA_WORKER_LANDLOCK_H

#include <stdbool.h>

#include "stage.h"

/* The kernel's Landlock ABI version, 0 when it has none (or disabled it).
 * Asked once, in the zygote. */
int landlock_abi(void);

/* Descriptors (O_PATH) of "/" and /dev/null, opened once in the zygote:
 * a rule names an inode, and these are the same in every microtask's
 * mount namespace. */
struct landlock_common {
    int root_fd;
    int null_fd;
};

/* Opens them. Returns 0, or -1 with errno set. */
int landlock_open_common(struct landlock_common *common);

/* In a microtask's child, after its mounts and no_new_privs, while the
 * zygote's descriptors are still open: restricts the process. Returns 0
 * (also when `abi` is 0), or -1 with errno set and in *step what failed (a
 * path, "creating the ruleset", "restrict_self"). */
int landlock_restrict(int abi, const struct landlock_common *common,
                      const struct stage_sandbox *sandbox, bool private_tmp, const char **step);

#endif /* TESSERA_WORKER_LANDLOCK_H */
