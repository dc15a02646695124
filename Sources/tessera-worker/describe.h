/*
 * describe.h - the `describe` mode: loads plugin files and prints, as one
 * JSON document, what each declares or why it was refused.
 */
#ifndef TESSERA_WORKER_DESCRIBE_H
#define TESSERA_WORKER_DESCRIBE_H

/* Runs the mode on the given files; returns the process's exit status. */
int describe_main(int file_count, char **files);

#endif /* TESSERA_WORKER_DESCRIBE_H */
