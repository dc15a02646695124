/*
 * loader.h - loading executor plugins and checking what they declare.
 *
 * Both modes of the worker load plugins the same way, so that what
 * `describe` accepts is exactly what the zygote runs. A file is refused with
 * one message of the form "<absolute path>: <reason>" when it is not a
 * regular file, is writable by group or others, is owned by someone other
 * than root or the worker's user, is not ELF, cannot be loaded, has no entry
 * point, refuses to initialise, speaks another ABI major version or a newer
 * minor one than the host, declares something invalid, or declares an
 * executor another loaded file provides.
 * A refused file is unloaded again.
 */
#ifndef TESSERA_WORKER_LOADER_H
#define TESSERA_WORKER_LOADER_H

#include <stddef.h>

#include <tessera/plugin.h>

struct plugin {
    char *path; /* absolute */
    void *handle;
    const tessera_plugin *declaration;
};

/* The plugins loaded so far, in load order. All zero is an empty set. */
struct plugin_set {
    struct plugin *plugins;
    size_t count;
    size_t capacity;
};

/* Returns `file` as an absolute path (symbolic links resolved when the file
 * exists), newly allocated. */
char *loader_absolute_path(const char *file);

/* Loads the plugin at the absolute `path` into `set`. Returns 0, or -1 and
 * a newly allocated message in *error. */
int loader_load(struct plugin_set *set, const char *path, char **error);

/* Returns the executor `name` provided by a plugin of `set`, or NULL; the
 * providing plugin is stored in *owner when `owner` is not NULL. */
const tessera_executor *loader_find_executor(const struct plugin_set *set, const char *name,
                                             const struct plugin **owner);

#endif /* TESSERA_WORKER_LOADER_H */
