/*
 * manyexec.c - a plugin that declares 40,000 executors, so the tests can
 * check that a declaration's size is bounded: the plugin is refused, not
 * loaded at the cost of the daemon's time and memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tessera/plugin.h>

#define EXECUTOR_COUNT 40000

static int manyexec_execute(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    return TESSERA_OK;
}

static tessera_plugin plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "manyexec",
    .version = "1.0",
    .description = "Declares far too many executors.",
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    tessera_executor *executors = calloc(EXECUTOR_COUNT, sizeof *executors);
    if (executors == NULL)
        return NULL;
    for (int i = 0; i < EXECUTOR_COUNT; i++) {
        char *name = malloc(32);
        if (name == NULL)
            return NULL;
        snprintf(name, 32, "executor_%d", i);
        executors[i] = (tessera_executor){name, "One of many.", NULL, 0, manyexec_execute};
    }
    plugin.executors = executors;
    plugin.executor_count = EXECUTOR_COUNT;
    return &plugin;
}
