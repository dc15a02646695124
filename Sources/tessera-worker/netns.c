/*
 * netns.c - the shared empty network namespace (see netns.h).
 */
#define _GNU_SOURCE
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io.h"

static int shared_fd = -1;

int netns_loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strcpy(request.ifr_name, "lo");
    int result = ioctl(fd, SIOCGIFFLAGS, &request);
    if (result == 0 && !(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        result = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int netns_shared(char **error)
{
    *error = NULL;
    if (shared_fd != -1)
        return shared_fd;
    int own = (int)RETRY(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    if (own == -1) {
        *error = xasprintf("network: none: cannot open this worker's network namespace: %s",
                           strerror(errno));
        return -1;
    }
    if (unshare(CLONE_NEWNET) == -1) {
        *error = xasprintf("network: none: this worker cannot create a network namespace "
                           "(unshare: %s); it needs CAP_SYS_ADMIN (a root daemon), or the "
                           "stage needs a user namespace",
                           strerror(errno));
        close(own);
        return -1;
    }
    int created = (int)RETRY(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
    int open_error = errno;
    int up = created == -1 ? -1 : netns_loopback_up();
    int up_error = errno;
    /* The zygote itself needs no network (its channel to the daemon is a
     * socket pair, whatever the namespace), but its other children, of
     * stages with the host's network, must be forked from the host's. */
    if (setns(own, CLONE_NEWNET) == -1) {
        worker_log("cannot return to the worker's network namespace: %s", strerror(errno));
        exit(EXIT_FAILURE);
    }
    close(own);
    if (created == -1 || up == -1) {
        *error = created == -1
                     ? xasprintf("network: none: cannot open the new network namespace: %s",
                                 strerror(open_error))
                     : xasprintf("network: none: cannot bring up lo: %s", strerror(up_error));
        if (created != -1)
            close(created);
        return -1;
    }
    shared_fd = created;
    return shared_fd;
}
