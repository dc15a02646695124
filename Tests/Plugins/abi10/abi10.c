/*
 * abi10.c - a test plugin as it was written for plugin ABI 1.0, so the
 * tests can check that a host of a later minor version still loads it and
 * runs it: its declaration says 1.0 in literals (not the header's macros,
 * which now say a later version), and its executor uses only the members
 * of tessera_host that 1.0 had. Parameters reach it with their templates
 * replaced all the same.
 */
#include <string.h>

#include <tessera/plugin.h>

/* Sets the result to the string parameter `text`. */
static int abi10_echo(const tessera_host *host, tessera_task *task)
{
    const char *text = host->param_string(task, "text");
    if (text == NULL) {
        host->log(task, TESSERA_LOG_ERROR, "parameter text is not set");
        return TESSERA_FAILED;
    }
    host->set_result(task, text, strlen(text));
    return TESSERA_OK;
}

static const tessera_param abi10_params[] = {
    {"text", TESSERA_PARAM_STRING, 1, NULL, "The text to set as the result."},
};

static const tessera_executor abi10_executors[] = {
    {"abi10_echo", "Sets the result to its parameter text (a plugin built for ABI 1.0).",
     abi10_params, sizeof abi10_params / sizeof abi10_params[0], abi10_echo},
};

static const tessera_plugin abi10_plugin = {
    .abi_major = 1,
    .abi_minor = 0,
    .name = "abi10",
    .version = "1.0",
    .description = "A plugin built for plugin ABI 1.0, for the test suite.",
    .executors = abi10_executors,
    .executor_count = sizeof abi10_executors / sizeof abi10_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &abi10_plugin;
}
