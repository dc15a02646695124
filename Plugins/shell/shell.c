/*
 * shell.c - the "shell" plugin: its executor "shell" runs one command.
 *
 * The command is an argument vector (no shell is involved unless the job
 * names one, e.g. [sh, -c, "..."]), looked up in the PATH of the command's
 * environment. It inherits the microtask's standard output and error, so
 * the worker captures what it prints. The executor returns the command's
 * exit status, 128 + the signal number when a signal killed it, or 127
 * when it could not be started (the error is logged).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define NOT_STARTED 127

static char *minimal_environment[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    NULL,
};

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

/* Builds "KEY=value" strings from the `env` map, or returns the minimal
 * environment when the job sets none. */
static char **command_environment(const tessera_host *host, tessera_task *task)
{
    size_t count = host->param_map_count(task, "env");
    if (count == 0)
        return minimal_environment;
    char **environment = calloc(count + 1, sizeof *environment);
    if (environment == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        const char *key = host->param_map_key(task, "env", i);
        const char *value = host->param_map_value(task, "env", i);
        if (asprintf(&environment[i], "%s=%s", key, value) < 0)
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

    pid_t pid = fork();
    if (pid == -1) {
        log_error(host, task, "cannot fork");
        return NOT_STARTED;
    }
    if (pid == 0) {
        /* execvp() searches the PATH of `environ`, so the command is found
         * through the environment it will run with. */
        environ = environment;
        execvp(argv[0], argv);
        char what[512];
        snprintf(what, sizeof what, "cannot run %s", argv[0]);
        log_error(host, task, what);
        _exit(NOT_STARTED);
    }

    int status;
    pid_t waited;
    do {
        waited = waitpid(pid, &status, 0);
    } while (waited == -1 && errno == EINTR);
    if (waited == -1) {
        log_error(host, task, "cannot wait for the command");
        return TESSERA_FAILED;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
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
        .description = "The command's whole environment; when unset, only "
                       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.",
    },
    {
        .name = "cwd",
        .type = TESSERA_PARAM_STRING,
        .required = 0,
        .default_value = NULL,
        .description = "The directory the command runs in; when unset, the worker's.",
    },
};

static const tessera_executor shell_executors[] = {
    {
        .name = "shell",
        .description = "Runs a command and succeeds when it exits with status 0.",
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
