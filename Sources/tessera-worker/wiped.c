/*
 * wiped.c - mappings marked MADV_WIPEONFORK (see wiped.h).
 */
#define _GNU_SOURCE
#include "wiped.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

/* Cleared when the kernel refuses MADV_WIPEONFORK: the memory is then an
 * ordinary mapping, and children do inherit it. */
static bool wipes = true;

static size_t page_rounded(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return size == 0 ? page : (size + page - 1) / page * page;
}

static void mark(void *memory, size_t capacity)
{
    if (wipes && madvise(memory, capacity, MADV_WIPEONFORK) == -1) {
        worker_log("this kernel cannot keep memory from forked microtasks (MADV_WIPEONFORK: %s); "
                   "their executors can read other stages' definitions",
                   strerror(errno));
        wipes = false;
    }
}

bool wiped_supported(void)
{
    size_t capacity;
    void *probe = wiped_alloc(1, &capacity);
    wiped_free(probe, capacity);
    return wipes;
}

void *wiped_alloc(size_t size, size_t *capacity)
{
    *capacity = page_rounded(size);
    void *memory = mmap(NULL, *capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        worker_log("out of memory (mmap of %zu bytes: %s)", *capacity, strerror(errno));
        exit(EXIT_FAILURE);
    }
    mark(memory, *capacity);
    return memory;
}

void *wiped_resize(void *memory, size_t old_capacity, size_t size, size_t *capacity)
{
    if (memory == NULL)
        return wiped_alloc(size, capacity);
    *capacity = page_rounded(size);
    void *moved = mremap(memory, old_capacity, *capacity, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) {
        worker_log("out of memory (mremap to %zu bytes: %s)", *capacity, strerror(errno));
        exit(EXIT_FAILURE);
    }
    /* mremap keeps the advice of the pages it moves; pages it adds are
     * marked here. */
    mark(moved, *capacity);
    return moved;
}

void wiped_free(void *memory, size_t capacity)
{
    if (memory != NULL && munmap(memory, capacity) == -1)
        worker_log("munmap: %s", strerror(errno));
}

void wiped_lend(void *memory, size_t capacity, bool lent)
{
    if (wipes && madvise(memory, capacity, lent ? MADV_KEEPONFORK : MADV_WIPEONFORK) == -1)
        worker_log("madvise: %s", strerror(errno));
}
