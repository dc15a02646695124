/*
 * main.c - the entry point of tessera-worker: picks the mode.
 *
 *   tessera-worker describe FILE.so...   print what the plugins declare
 *   tessera-worker zygote FILE.so...     serve the daemon on standard input
 *
 * The worker is C, not Swift, because the zygote forks: the code between
 * fork() and the executor must not depend on a language runtime's locks or
 * threads.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "describe.h"
#include "io.h"
#include "zygote.h"

#define EXIT_USAGE 2

/* Makes sure descriptors 0 to 2 are open (on /dev/null if they were not),
 * so that no file the worker opens later lands on one of them by accident:
 * the child relies on all its pipes being above 2. */
static void ensure_standard_descriptors(void)
{
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        /* open() returns the lowest free descriptor, which is `fd`. */
        if (RETRY(open("/dev/null", O_RDWR)) == -1)
            exit(EXIT_FAILURE);
    }
}

static int usage(void)
{
    fputs("usage: tessera-worker describe FILE.so...\n"
          "       tessera-worker zygote FILE.so...\n",
          stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    ensure_standard_descriptors();
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "describe") == 0)
        return describe_main(argc - 2, argv + 2);
    if (strcmp(argv[1], "zygote") == 0)
        return zygote_main(argc - 2, argv + 2);
    return usage();
}
