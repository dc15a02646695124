/*
 * shims.c - see include/tessera_shims.h.
 */
#define _GNU_SOURCE
#include "tessera_shims.h"

#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

int tessera_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}
