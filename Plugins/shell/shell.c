/*
 * shell.c - the "shell" plugin: its executor "shell" runs one command.
 *
 * The command is an argument vector (no shell is involved unless the job
 * names one, e.g. [sh, -c, "..."]), looked up in the PATH of the command's
 * environment. The executor does not fork: it replaces itself with the
 * command (execve), so the command is the microtask's own process. Its
 * limits, the signals that end it, its CPU time and memory are then the
 * microtask's, and Tessera reports them as such (a fork would leave only
 * an exit code such as 128 + the signal to report). It keeps the
 * microtask's standard output and error, which the worker captures. When
 * the command cannot be started, the error is logged and the executor
 * returns 127.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define NOT_STARTED 127

/* Logs "<what>: <errno text>" at error level. */
static void log_error(const tessera_host *host, tessera_task *task, const char *what)
{
    char line[512];
    snprintf(line, sizeof line, "%s: %s", what, strerror(errno));
    host->log(task, TESSERA_LOG_ERROR, line);
}

/* Builds the argument vector from the `command` list, which has `count`
 * elements; NULL when memory ran out. */
static char **command_argv(const tessera_host *host, tessera_task *task, size_t count)
{
    char **argv = calloc(count + 1, sizeof *argv);
    if (argv == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++)
        argv[i] = (char *)host->param_list_item(task, "command", i);
    return argv;
}

/* True when `entry` ("NAME=value") sets the variable `name`, which is
 * `length` bytes long. */
static int sets(const char *entry, const char *name, size_t length)
{
    return strncmp(entry, name, length) == 0 && entry[length] == '=';
}

/* The microtask's environment with the `env` map laid over it: a key of
 * the map replaces a variable of that name, others are added. NULL when
 * memory ran out. */
static char **command_environment(const tessera_host *host, tessera_task *task)
{
    size_t count = host->param_map_count(task, "env");
    if (count == 0)
        return environ;
    size_t inherited = 0;
    while (environ[inherited] != NULL)
        inherited++;
    char **environment = calloc(inherited + count + 1, sizeof *environment);
    if (environment == NULL)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < inherited; i++) {
        const char *equals = strchr(environ[i], '=');
        size_t length = equals != NULL ? (size_t)(equals - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < count && !replaced; j++) {
            const char *key = host->param_map_key(task, "env", j);
            replaced = strlen(key) == length && sets(environ[i], key, length);
        }
        if (!replaced)
            environment[used++] = environ[i];
    }
    for (size_t j = 0; j < count; j++) {
        const char *key = host->param_map_key(task, "env", j);
        const char *value = host->param_map_value(task, "env", j);
        if (asprintf(&environment[used++], "%s=%s", key, value) < 0)
            return NULL;
    }
    return environment;
}

static int shell_execute(const tessera_host *host, tessera_task *task)
{
    size_t count = host->param_list_count(task, "command");
    if (count == 0) {
        host->log(task, TESSERA_LOG_ERROR, "the command is empty");
        return NOT_STARTED;
    }
    char **argv = command_argv(host, task, count);
    if (argv == NULL) {
        log_error(host, task, "cannot build the argument vector");
        return NOT_STARTED;
    }
    char **environment = command_environment(host, task);
    if (environment == NULL) {
        log_error(host, task, "cannot build the environment");
        return NOT_STARTED;
    }
    /* The executor's process exists only for this microtask, so it may
     * change directory itself; the command inherits it. */
    const char *cwd = host->param_string(task, "cwd");
    if (cwd != NULL && chdir(cwd) == -1) {
        char what[512];
        snprintf(what, sizeof what, "cannot change to directory %s", cwd);
        log_error(host, task, what);
        return NOT_STARTED;
    }
    /* Whatever the executor wrote through stdio must not be lost, nor
     * written twice: the command starts with the same descriptors. */
    fflush(NULL);
    /* execvp() searches the PATH of `environ`, so the command is found
     * through the environment it will run with. */
    environ = environment;
    execvp(argv[0], argv);
    char what[512];
    snprintf(what, sizeof what, "cannot run %s", argv[0]);
    log_error(host, task, what);
    return NOT_STARTED;
}

static const tessera_param shell_params[] = {
    {
        .name = "command",
        .type = TESSERA_PARAM_STRING_LIST,
        .required = 1,
        .default_value = NULL,
        .description = "The command and its arguments; the first element is looked up in PATH.",
    },
    {
        .name = "env",
        .type = TESSERA_PARAM_STRING_MAP,
        .required = 0,
        .default_value = NULL,
        .description = "Variables set for the command, over the microtask's environment "
                       "(PATH, LANG and the stage's sandbox environment).",
    },
    {
        .name = "cwd",
        .type = TESSERA_PARAM_STRING,
        .required = 0,
        .default_value = NULL,
        .description = "The directory the command runs in; when unset, / in a sandbox, else "
                       "the worker's.",
    },
};

static const tessera_executor shell_executors[] = {
    {
        .name = "shell",
        .description = "Runs a command as the microtask's process; succeeds when it exits with "
                       "status 0.",
        .params = shell_params,
        .param_count = sizeof shell_params / sizeof shell_params[0],
        .execute = shell_execute,
    },
};

static const tessera_plugin shell_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "shell",
    .version = "1.0",
    .description = "Runs commands.",
    .executors = shell_executors,
    .executor_count = sizeof shell_executors / sizeof shell_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &shell_plugin;
}
