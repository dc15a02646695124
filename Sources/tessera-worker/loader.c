/*
 * loader.c - the checks a plugin file goes through before it is used.
 *
 * The order matters: cheap checks of the file come before dlopen(), because
 * dlopen() runs the library's constructors, and the plugin's entry point is
 * called only for a file that passed them. The file is opened once and its
 * type, mode, owner and ELF magic are read from that one descriptor, so
 * they describe the same file.
 */
#define _GNU_SOURCE
#include "loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "io.h"

typedef const tessera_plugin *(*plugin_entry)(const tessera_host *host);

/* The most a declaration may hold. Declarations are read by the daemon,
 * kept in its memory and sent to every client that lists plugins, so a
 * plugin that declares without end is refused instead of loaded. */
#define MAX_EXECUTORS 256
#define MAX_PARAMS 64
#define MAX_NAME 128         /* bytes of a plugin, executor or parameter name, or a version */
#define MAX_DESCRIPTION 4096 /* bytes of a description or a default value */

char *loader_absolute_path(const char *file)
{
    char *resolved = realpath(file, NULL);
    if (resolved != NULL)
        return resolved;
    if (file[0] == '/')
        return xstrdup(file);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return xstrdup(file);
    return xasprintf("%s/%s", cwd, file);
}

/* Stores "<path>: <reason>" in *error and returns -1. */
__attribute__((format(printf, 3, 4))) static int refuse(char **error, const char *path,
                                                        const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    char *reason = xvasprintf(format, arguments);
    va_end(arguments);
    *error = xasprintf("%s: %s", path, reason);
    free(reason);
    return -1;
}

/* Checks the file itself: type, permissions, owner and ELF magic. */
static int check_file(const char *path, char **error)
{
    /* O_NONBLOCK keeps a FIFO from blocking the open; it is refused below. */
    int fd = (int)RETRY(open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (fd == -1)
        return refuse(error, path, "cannot open: %s", strerror(errno));
    struct stat status;
    unsigned char magic[4];
    int result = 0;
    if (fstat(fd, &status) == -1) {
        result = refuse(error, path, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(status.st_mode)) {
        result = refuse(error, path, "not a regular file");
    } else if (status.st_mode & (S_IWGRP | S_IWOTH)) {
        result = refuse(error, path, "writable by group or others (mode %04o); refusing to load",
                        (unsigned)(status.st_mode & 07777));
    } else if (status.st_uid != 0 && status.st_uid != geteuid()) {
        result = refuse(error, path,
                        "owned by uid %u, not root or the daemon's user; refusing to load",
                        (unsigned)status.st_uid);
    } else {
        ssize_t got = RETRY(pread(fd, magic, sizeof magic, 0));
        if (got == -1)
            result = refuse(error, path, "cannot read: %s", strerror(errno));
        else if (got != (ssize_t)sizeof magic || memcmp(magic, "\x7f" "ELF", 4) != 0)
            result = refuse(error, path, "not an ELF file");
    }
    close(fd);
    return result;
}

/* Parameter names follow [a-z_][a-z0-9_]*, as plugin.h promises job authors. */
static bool valid_param_name(const char *name)
{
    if (!(*name == '_' || (*name >= 'a' && *name <= 'z')))
        return false;
    for (const char *c = name + 1; *c != '\0'; c++) {
        if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return false;
    }
    return true;
}

static bool valid_param_type(tessera_param_type type)
{
    return type >= TESSERA_PARAM_STRING && type <= TESSERA_PARAM_STRING_MAP;
}

/* Whether an optional string of a declaration is at most `limit` bytes. */
static bool fits(const char *text, size_t limit)
{
    return text == NULL || strnlen(text, limit + 1) <= limit;
}

/* Checks one executor's declaration (the `index`th of its plugin). */
static int check_executor(const tessera_executor *executor, uint32_t index, const char *path,
                          char **error)
{
    if (executor->name == NULL || executor->name[0] == '\0')
        return refuse(error, path, "executor #%u has no name", index + 1);
    if (!fits(executor->name, MAX_NAME))
        return refuse(error, path, "executor #%u has a name longer than %d bytes", index + 1,
                      MAX_NAME);
    const char *name = executor->name;
    if (executor->execute == NULL)
        return refuse(error, path, "executor \"%s\" has no execute function", name);
    if (!fits(executor->description, MAX_DESCRIPTION))
        return refuse(error, path, "executor \"%s\" has a description longer than %d bytes",
                      name, MAX_DESCRIPTION);
    if (executor->param_count > MAX_PARAMS)
        return refuse(error, path, "executor \"%s\" declares %u parameters; at most %d are allowed",
                      name, executor->param_count, MAX_PARAMS);
    if (executor->param_count > 0 && executor->params == NULL)
        return refuse(error, path, "executor \"%s\" declares %u parameters but no table", name,
                      executor->param_count);
    for (uint32_t p = 0; p < executor->param_count; p++) {
        const tessera_param *param = &executor->params[p];
        if (param->name == NULL)
            return refuse(error, path, "executor \"%s\": parameter #%u has no name", name, p + 1);
        if (!fits(param->name, MAX_NAME) || !fits(param->description, MAX_DESCRIPTION) ||
            !fits(param->default_value, MAX_DESCRIPTION))
            return refuse(error, path,
                          "executor \"%s\": parameter #%u has a name longer than %d bytes, or a "
                          "description or default longer than %d",
                          name, p + 1, MAX_NAME, MAX_DESCRIPTION);
        if (!valid_param_name(param->name))
            return refuse(error, path,
                          "executor \"%s\": parameter name \"%s\" is not of the form "
                          "[a-z_][a-z0-9_]*",
                          name, param->name);
        if (!valid_param_type(param->type))
            return refuse(error, path, "executor \"%s\": parameter \"%s\" has unknown type %d",
                          name, param->name, (int)param->type);
        for (uint32_t q = 0; q < p; q++) {
            if (strcmp(executor->params[q].name, param->name) == 0)
                return refuse(error, path, "executor \"%s\": parameter \"%s\" is declared twice",
                              name, param->name);
        }
    }
    return 0;
}

/* Checks a declaration the entry point returned, and that none of its
 * executors is already provided by a plugin of `set`. */
static int check_declaration(const struct plugin_set *set, const tessera_plugin *declaration,
                             const char *path, char **error)
{
    if (declaration->abi_major != TESSERA_ABI_MAJOR)
        return refuse(error, path, "built for plugin ABI %u.%u, this host speaks %d.x",
                      declaration->abi_major, declaration->abi_minor, TESSERA_ABI_MAJOR);
    /* An older minor is what the host table still serves (members are only
     * added at its end); a newer one may call members this host lacks. */
    if (declaration->abi_minor > TESSERA_ABI_MINOR)
        return refuse(error, path,
                      "built for plugin ABI %u.%u, newer than this host's %d.%d; upgrade "
                      "Tessera or rebuild the plugin for %d.%d",
                      declaration->abi_major, declaration->abi_minor, TESSERA_ABI_MAJOR,
                      TESSERA_ABI_MINOR, TESSERA_ABI_MAJOR, TESSERA_ABI_MINOR);
    if (declaration->name == NULL || declaration->name[0] == '\0')
        return refuse(error, path, "the plugin declares no name");
    if (!fits(declaration->name, MAX_NAME) || !fits(declaration->version, MAX_NAME) ||
        !fits(declaration->description, MAX_DESCRIPTION))
        return refuse(error, path,
                      "the plugin's name or version is longer than %d bytes, or its description "
                      "longer than %d",
                      MAX_NAME, MAX_DESCRIPTION);
    if (declaration->executor_count > MAX_EXECUTORS)
        return refuse(error, path, "declares %u executors; at most %d are allowed",
                      declaration->executor_count, MAX_EXECUTORS);
    if (declaration->executor_count > 0 && declaration->executors == NULL)
        return refuse(error, path, "the plugin declares %u executors but no table",
                      declaration->executor_count);
    for (uint32_t e = 0; e < declaration->executor_count; e++) {
        const tessera_executor *executor = &declaration->executors[e];
        if (check_executor(executor, e, path, error) != 0)
            return -1;
        for (uint32_t f = 0; f < e; f++) {
            if (strcmp(declaration->executors[f].name, executor->name) == 0)
                return refuse(error, path, "executor \"%s\" is declared twice", executor->name);
        }
        const struct plugin *owner;
        if (loader_find_executor(set, executor->name, &owner) != NULL)
            return refuse(error, path, "executor \"%s\" is already provided by %s",
                          executor->name, owner->path);
    }
    return 0;
}

int loader_load(struct plugin_set *set, const char *path, char **error)
{
    if (check_file(path, error) != 0)
        return -1;

    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL)
        return refuse(error, path, "cannot load: %s", dlerror());
    (void)dlerror();
    void *symbol = dlsym(handle, TESSERA_PLUGIN_ENTRY);
    const char *problem = dlerror();
    if (symbol == NULL || problem != NULL) {
        refuse(error, path, "no entry point " TESSERA_PLUGIN_ENTRY " (%s)",
               problem ? problem : "the symbol is NULL");
        dlclose(handle);
        return -1;
    }

    host_set_loading_plugin(path);
    const tessera_plugin *declaration = ((plugin_entry)symbol)(&host_table);
    host_set_loading_plugin(NULL);
    int result = declaration == NULL ? refuse(error, path, "the plugin refused to initialise")
                                     : check_declaration(set, declaration, path, error);
    if (result != 0) {
        dlclose(handle);
        return -1;
    }

    if (set->count == set->capacity) {
        set->capacity = set->capacity ? set->capacity * 2 : 8;
        set->plugins = xrealloc(set->plugins, set->capacity * sizeof *set->plugins);
    }
    set->plugins[set->count++] = (struct plugin){
        .path = xstrdup(path),
        .handle = handle,
        .declaration = declaration,
    };
    return 0;
}

const tessera_executor *loader_find_executor(const struct plugin_set *set, const char *name,
                                             const struct plugin **owner)
{
    for (size_t i = 0; i < set->count; i++) {
        const tessera_plugin *declaration = set->plugins[i].declaration;
        for (uint32_t e = 0; e < declaration->executor_count; e++) {
            if (strcmp(declaration->executors[e].name, name) == 0) {
                if (owner != NULL)
                    *owner = &set->plugins[i];
                return &declaration->executors[e];
            }
        }
    }
    return NULL;
}
