/*
 * dupexec.c - a test plugin that declares the executor "twice" twice. The
 * worker must refuse the whole plugin, since a stage could not say which
 * of the two it means.
 */
#include <tessera/plugin.h>

static int dupexec_execute(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    return TESSERA_OK;
}

static const tessera_executor dupexec_executors[] = {
    {"twice", "The first declaration.", NULL, 0, dupexec_execute},
    {"twice", "The second declaration.", NULL, 0, dupexec_execute},
};

static const tessera_plugin dupexec_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "dupexec",
    .version = "1.0",
    .description = "Declares one executor name twice.",
    .executors = dupexec_executors,
    .executor_count = 2,
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &dupexec_plugin;
}
