/*
 * crashinit.c - a plugin whose entry point crashes (a write through a null
 * pointer), so the tests can check that it takes down only the process
 * describing it, and that the other plugins still load.
 */
#include <stddef.h>

#include <tessera/plugin.h>

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    /* The empty asm hides the value, so the store is made (GCC drops a
     * store through a volatile pointer variable that holds NULL). */
    int *target = NULL;
    __asm__ volatile("" : "+r"(target));
    *(volatile int *)target = 1;
    return NULL;
}
