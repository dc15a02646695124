/*
 * wrongabi.c - a test plugin built for the next plugin ABI major version.
 * The worker must refuse it with a message naming both versions, without
 * looking at anything else it declares.
 */
#include <tessera/plugin.h>

static int wrongabi_execute(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    return TESSERA_OK;
}

static const tessera_executor wrongabi_executors[] = {
    {"wrongabi", "Never runs: its plugin is refused.", NULL, 0, wrongabi_execute},
};

static const tessera_plugin wrongabi_plugin = {
    .abi_major = TESSERA_ABI_MAJOR + 1,
    .abi_minor = 0,
    .name = "wrongabi",
    .version = "1.0",
    .description = "Declares a plugin ABI major version the host does not speak.",
    .executors = wrongabi_executors,
    .executor_count = 1,
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &wrongabi_plugin;
}
