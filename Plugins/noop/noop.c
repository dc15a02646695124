/*
 * noop.c - the "noop" plugin: one executor, "noop", that does nothing and
 * succeeds. It exists to measure what a microtask costs the worker itself
 * (fork, sandbox, supervision) with no executor work on top.
 */
#include <tessera/plugin.h>

static int noop_execute(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    return TESSERA_OK;
}

static const tessera_executor noop_executors[] = {
    {
        .name = "noop",
        .description = "Does nothing and succeeds; for benchmarks.",
        .params = NULL,
        .param_count = 0,
        .execute = noop_execute,
    },
};

static const tessera_plugin noop_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "noop",
    .version = "1.0",
    .description = "An executor that does nothing, for measuring the worker.",
    .executors = noop_executors,
    .executor_count = sizeof noop_executors / sizeof noop_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &noop_plugin;
}
