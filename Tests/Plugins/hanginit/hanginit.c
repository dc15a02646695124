/*
 * hanginit.c - a plugin whose entry point never returns, so the tests can
 * check that describing it neither blocks the daemon nor keeps the other
 * plugins from loading.
 */
#include <stddef.h>
#include <unistd.h>

#include <tessera/plugin.h>

/* Always true; read through volatile so the loop is not optimised away. */
static volatile int forever = 1;

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    while (forever)
        pause();
    return NULL;
}
