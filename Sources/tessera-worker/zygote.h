/*
 * zygote.h - the `zygote` mode: loads plugins once, then forks one child per
 * microtask the daemon sends over standard input (see tessera_wire.h).
 */
#ifndef TESSERA_WORKER_ZYGOTE_H
#define TESSERA_WORKER_ZYGOTE_H

/* Runs the zygote with the given plugin files; returns only on a setup
 * error, with the process's exit status. */
int zygote_main(int file_count, char **files);

#endif /* TESSERA_WORKER_ZYGOTE_H */
