/*
 * shims.c - see include/tessera_shims.h.
 */
#define _GNU_SOURCE
#include "tessera_shims.h"

#include <errno.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int tessera_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}

int tessera_peer_credentials(int fd, int *pid, unsigned int *uid, unsigned int *gid)
{
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == -1)
        return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int tessera_journal_send(int priority, const char *message, const char *job, const char *run,
                         const char *task)
{
    const char *names[3] = {"TESSERA_JOB=", "TESSERA_RUN=", "TESSERA_TASK="};
    const char *values[3] = {job, run, task};
    char priority_field[16];
    char *owned[4] = {NULL, NULL, NULL, NULL};
    struct iovec entries[6];
    int count = 0;
    snprintf(priority_field, sizeof priority_field, "PRIORITY=%d", priority);
    entries[count++] = (struct iovec){priority_field, strlen(priority_field)};
    static const char identifier[] = "SYSLOG_IDENTIFIER=tesserad";
    entries[count++] = (struct iovec){(void *)identifier, sizeof identifier - 1};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        const char *name = i < 3 ? names[i] : "MESSAGE=";
        const char *value = i < 3 ? values[i] : message;
        if (value == NULL)
            continue;
        size_t length = strlen(name) + strlen(value) + 1;
        owned[i] = malloc(length);
        if (owned[i] == NULL) {
            rc = -ENOMEM;
            break;
        }
        snprintf(owned[i], length, "%s%s", name, value);
        entries[count++] = (struct iovec){owned[i], length - 1};
    }
    if (rc == 0)
        rc = sd_journal_sendv(entries, count);
    for (int i = 0; i < 4; i++)
        free(owned[i]);
    return rc;
}
