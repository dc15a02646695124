/*
 * hostile.c - the "hostile" test plugin: executors that misbehave on
 * purpose, one way each, so the tests can check that the worker contains
 * them (crashes, runaway CPU, memory and output, ignored signals) and that
 * the ordinary paths (results, progress, parameters, logging, and the
 * context and item functions of plugin ABI 1.1) work.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define CHUNK (1024 * 1024)

/* Always true; the loops below test it so the compiler neither removes them
 * nor complains that the functions never return. */
static volatile int forever = 1;

/* Writes through a pointer the compiler cannot prove to be NULL (the empty
 * asm hides its value), so the store is really made (and faults) instead of
 * being optimised away: GCC drops a store through a volatile pointer
 * variable that holds NULL. */
static void write_through(char *pointer)
{
    __asm__ volatile("" : "+r"(pointer));
    *(volatile char *)pointer = 1;
}

/* Sets the result to the item and prints "ok <item>". */
static int hostile_ok(const tessera_host *host, tessera_task *task)
{
    const char *item = host->item(task);
    host->set_result(task, item, strlen(item));
    printf("ok %s\n", item);
    return TESSERA_OK;
}

static int hostile_fail(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    fprintf(stderr, "failing on purpose\n");
    return 3;
}

static int hostile_segfault(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    write_through(NULL);
    return TESSERA_FAILED;
}

static int hostile_abort(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    abort();
}

/* Burns CPU until RLIMIT_CPU stops it. */
static int hostile_spin(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    while (forever)
        continue;
    return TESSERA_FAILED;
}

/* Ignores SIGTERM and sleeps until the daemon's wall limit sends SIGKILL. */
static int hostile_sleep_ignore_term(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    signal(SIGTERM, SIG_IGN);
    while (forever)
        sleep(1000);
    return TESSERA_FAILED;
}

/* Allocates and touches memory until RLIMIT_AS refuses more, then crashes
 * on the NULL it got. */
static int hostile_balloon(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    for (;;) {
        char *chunk = malloc(CHUNK);
        if (chunk == NULL) {
            write_through(chunk);
            return TESSERA_FAILED;
        }
        memset(chunk, 0xa5, CHUNK);
    }
}

/* Writes to standard output until the output limit stops it. */
static int hostile_flood(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    static char line[4096];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    while (forever)
        fwrite(line, 1, sizeof line, stdout);
    return TESSERA_FAILED;
}

static int hostile_progress(const tessera_host *host, tessera_task *task)
{
    host->progress(task, 0.25);
    host->progress(task, 0.5);
    host->progress(task, 1.0);
    static const char result[] = "{\"done\":true}";
    host->set_result(task, result, sizeof result - 1);
    return TESSERA_OK;
}

/* Sets the result to {"text": <text>, "count": <count>}. */
static int hostile_echo_params(const tessera_host *host, tessera_task *task)
{
    const char *text = host->param_string(task, "text");
    int64_t count = 0;
    if (text == NULL || host->param_integer(task, "count", &count) != 0) {
        host->log(task, TESSERA_LOG_ERROR, "text or count is missing");
        return TESSERA_FAILED;
    }
    /* Each byte of text takes at most six bytes escaped (\u00XX). */
    size_t capacity = strlen(text) * 6 + 64;
    char *json = malloc(capacity);
    if (json == NULL)
        return TESSERA_FAILED;
    size_t length = (size_t)sprintf(json, "{\"text\":\"");
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            length += (size_t)sprintf(json + length, "\\%c", *c);
        else if (*c < 0x20)
            length += (size_t)sprintf(json + length, "\\u%04x", *c);
        else
            json[length++] = (char)*c;
    }
    length += (size_t)sprintf(json + length, "\",\"count\":%lld}", (long long)count);
    host->set_result(task, json, length);
    free(json);
    return TESSERA_OK;
}

static int hostile_loglines(const tessera_host *host, tessera_task *task)
{
    host->log(task, TESSERA_LOG_ERROR, "an error line");
    host->log(task, TESSERA_LOG_WARNING, "a warning line");
    host->log(task, TESSERA_LOG_INFO, "an info line");
    host->log(task, TESSERA_LOG_DEBUG, "a debug line");
    return TESSERA_OK;
}

/* Writes a frame of the worker's private channel (descriptor 3) by hand:
 * a header of two machine-order u32s (type, length) and a u64 payload, the
 * form the worker's own crash reports once had. The microtask then exits
 * as if it had been killed, to try to make its record say so. */
static void forge_frame(uint32_t type, uint64_t value)
{
    struct {
        uint32_t type;
        uint32_t length;
        uint64_t value;
    } frame = {type, sizeof value, value};
    if (write(3, &frame, sizeof frame) != (ssize_t)sizeof frame)
        perror("writing to descriptor 3");
}

/* Claims to have died of SIGSEGV (the old "signal" frame, type 5), then
 * exits with 128 + 11, as a namespace's pid 1 reporting a crash did. */
static int hostile_forge_signal(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    forge_frame(5, SIGSEGV);
    _exit(128 + SIGSEGV);
}

/* Claims a peak address space of 1 TiB (the old "peak" frame, type 3),
 * then fails, to be reported as over its memory limit. */
static int hostile_forge_peak(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    forge_frame(3, (uint64_t)1 << 40);
    _exit(1);
}

/* Queues itself `signo` with a code that claims the kernel sent it (as
 * rt_sigqueueinfo lets a process do to itself), to be reported as a limit
 * or the sandbox's doing. */
static void forge_kernel_signal(int signo, int code)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = signo;
    info.si_code = code;
    if (syscall(SYS_rt_sigqueueinfo, getpid(), signo, &info) != 0)
        perror("rt_sigqueueinfo");
    pause();
}

static int hostile_forge_xcpu(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    forge_kernel_signal(SIGXCPU, SI_KERNEL);
    return TESSERA_FAILED;
}

static int hostile_forge_sigsys(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    forge_kernel_signal(SIGSYS, 1 /* SYS_SECCOMP */);
    return TESSERA_FAILED;
}

/* Logs an error through the host, then writes other lines to standard
 * error, and fails: the reason must carry the logged error. */
static int hostile_log_error(const tessera_host *host, tessera_task *task)
{
    host->log(task, TESSERA_LOG_ERROR, "the input is not a number");
    fprintf(stderr, "some noise after the error\n");
    return 4;
}

/* Sends itself SIGTERM without handling it. */
static int hostile_term_self(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    raise(SIGTERM);
    return TESSERA_OK;
}

/* Copies `length` bytes at `address` of this process into `out` through a
 * pipe, so that memory which cannot be read fails the write (EFAULT)
 * instead of crashing the reader. Returns the bytes copied. */
static ssize_t safe_copy(int pipe_fds[2], unsigned long address, char *out, size_t length)
{
    ssize_t written = write(pipe_fds[1], (const void *)address, length);
    if (written <= 0)
        return written;
    ssize_t got = 0;
    while (got < written) {
        ssize_t n = read(pipe_fds[0], out + got, (size_t)(written - got));
        if (n <= 0)
            return -1;
        got += n;
    }
    return got;
}

/* Searches every readable mapping of the process for `needle`, ignoring
 * the copy at `own`. Returns whether it was found. */
static int memory_contains(const char *needle, const char *own)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    int memory[2];
    if (maps == NULL || pipe(memory) == -1) {
        perror("opening /proc/self/maps or a pipe");
        exit(5);
    }
    size_t needle_length = strlen(needle);
    /* One pipe's worth: a write of it never blocks on the empty pipe. */
    static char chunk[1 << 16];
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, maps) != NULL) {
        unsigned long start, end;
        char permissions[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, permissions) != 3 || permissions[0] != 'r')
            continue;
        if (strstr(line, "[vvar") != NULL || strstr(line, "[vsyscall]") != NULL)
            continue;
        for (unsigned long at = start; at < end && !found;) {
            size_t want = end - at < sizeof chunk ? end - at : sizeof chunk;
            ssize_t got = safe_copy(memory, at, chunk, want);
            if (got <= 0) {
                at += 4096; /* an unreadable page: try the next */
                continue;
            }
            for (size_t i = 0; i + needle_length <= (size_t)got; i++) {
                if (chunk[i] == needle[0] && memcmp(chunk + i, needle, needle_length) == 0 &&
                    (const char *)(at + i) != own && chunk + i != own) {
                    found = 1;
                    break;
                }
            }
            /* Overlap so a needle across two chunks is not missed. */
            at += (size_t)got > needle_length ? (size_t)got - needle_length : (size_t)got;
        }
    }
    fclose(maps);
    close(memory[0]);
    close(memory[1]);
    return found;
}

/* Looks in its own memory for each of `needles`, given reversed (so the
 * parameter itself does not match), and sets the result to the needles it
 * found, one a line. */
static int hostile_scan_memory(const tessera_host *host, tessera_task *task)
{
    static char result[4096];
    size_t used = 0;
    size_t count = host->param_list_count(task, "reversed_needles");
    for (size_t n = 0; n < count; n++) {
        const char *reversed = host->param_list_item(task, "reversed_needles", n);
        size_t length = strlen(reversed);
        char *needle = malloc(length + 1);
        if (needle == NULL)
            return TESSERA_FAILED;
        for (size_t i = 0; i < length; i++)
            needle[i] = reversed[length - 1 - i];
        needle[length] = '\0';
        if (memory_contains(needle, needle) && used + length + 1 < sizeof result) {
            memcpy(result + used, needle, length);
            used += length;
            result[used++] = '\n';
        }
        /* The copy goes, so the next search does not find it. */
        memset(needle, 0, length);
        free(needle);
    }
    host->set_result(task, result, used);
    return TESSERA_OK;
}

/* Prints `output`, reports progress 0.5 once that is written, and sleeps
 * until it is killed: a microtask whose parameters, environment and
 * output stay in the worker while it runs. */
static int hostile_hold_secret(const tessera_host *host, tessera_task *task)
{
    const char *output = host->param_string(task, "output");
    printf("%s\n", output != NULL ? output : "");
    fflush(stdout);
    host->progress(task, 0.5);
    while (forever)
        sleep(1000);
    return TESSERA_FAILED;
}

/* A growable text for building JSON results; `failed` once memory ran out. */
struct text {
    char *data;
    size_t length;
    size_t capacity;
    int failed;
};

static void text_append(struct text *text, const char *bytes, size_t length)
{
    if (text->failed)
        return;
    if (text->capacity - text->length < length + 1) {
        size_t capacity = text->capacity ? text->capacity : 256;
        while (capacity - text->length < length + 1)
            capacity *= 2;
        char *grown = realloc(text->data, capacity);
        if (grown == NULL) {
            text->failed = 1;
            return;
        }
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->length, bytes, length);
    text->length += length;
    text->data[text->length] = '\0';
}

static void text_put(struct text *text, const char *string)
{
    text_append(text, string, strlen(string));
}

/* Appends `value` as a JSON string, or null when it is NULL. */
static void text_put_json(struct text *text, const char *value)
{
    if (value == NULL) {
        text_put(text, "null");
        return;
    }
    text_put(text, "\"");
    for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++) {
        char escaped[8];
        if (*c == '"' || *c == '\\') {
            snprintf(escaped, sizeof escaped, "\\%c", *c);
            text_put(text, escaped);
        } else if (*c < 0x20) {
            snprintf(escaped, sizeof escaped, "\\u%04x", *c);
            text_put(text, escaped);
        } else {
            text_append(text, (const char *)c, 1);
        }
    }
    text_put(text, "\"");
}

static void text_put_number(struct text *text, unsigned long long value)
{
    char digits[24];
    snprintf(digits, sizeof digits, "%llu", value);
    text_put(text, digits);
}

/* Sets the result to a JSON object of what the ABI 1.1 functions say. */
static int hostile_task_info(const tessera_host *host, tessera_task *task)
{
    if (host->abi_minor < 1) {
        host->log(task, TESSERA_LOG_ERROR, "the host does not speak plugin ABI 1.1");
        return TESSERA_FAILED;
    }
    struct text json = {0};
    text_put(&json, "{\"run\":");
    text_put_number(&json, host->run_id(task));
    text_put(&json, ",\"job\":");
    text_put_json(&json, host->job_name(task));
    text_put(&json, ",\"stage\":");
    text_put_json(&json, host->stage_name(task));
    text_put(&json, ",\"attempt\":");
    text_put_number(&json, host->attempt(task));
    text_put(&json, ",\"index\":");
    text_put_number(&json, host->index(task));
    text_put(&json, ",\"item\":");
    text_put_json(&json, host->item(task));
    text_put(&json, ",\"input\":");
    text_put_json(&json, host->input_path(task));
    text_put(&json, ",\"run_dir\":");
    text_put_json(&json, host->run_dir(task));
    text_put(&json, ",\"field_x\":");
    text_put_json(&json, host->item_field(task, "x"));
    size_t count = host->item_count(task);
    text_put(&json, ",\"count\":");
    text_put_number(&json, count);
    text_put(&json, ",\"items\":[");
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            text_put(&json, ",");
        text_put_json(&json, host->item_at(task, i));
    }
    text_put(&json, "]}");
    if (json.failed) {
        host->log(task, TESSERA_LOG_ERROR, "out of memory");
        return TESSERA_FAILED;
    }
    host->set_result(task, json.data, json.length);
    free(json.data);
    return TESSERA_OK;
}

/* Logs "<what> <path>: <errno text>" at error level. */
static void log_file_error(const tessera_host *host, tessera_task *task, const char *what,
                           const char *path)
{
    char line[1024];
    snprintf(line, sizeof line, "%s %s: %s", what, path, strerror(errno));
    host->log(task, TESSERA_LOG_ERROR, line);
}

/* Sets the result to the whole content of the stage's input file. */
static int hostile_read_input(const tessera_host *host, tessera_task *task)
{
    if (host->abi_minor < 1) {
        host->log(task, TESSERA_LOG_ERROR, "the host does not speak plugin ABI 1.1");
        return TESSERA_FAILED;
    }
    const char *path = host->input_path(task);
    if (path == NULL) {
        host->log(task, TESSERA_LOG_ERROR, "the stage has no input file");
        return TESSERA_FAILED;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        log_file_error(host, task, "cannot open", path);
        return TESSERA_FAILED;
    }
    struct text content = {0};
    char chunk[65536];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            log_file_error(host, task, "cannot read", path);
            return TESSERA_FAILED;
        }
        if (got == 0)
            break;
        text_append(&content, chunk, (size_t)got);
    }
    close(fd);
    if (content.failed) {
        host->log(task, TESSERA_LOG_ERROR, "out of memory");
        return TESSERA_FAILED;
    }
    host->set_result(task, content.data, content.length);
    free(content.data);
    return TESSERA_OK;
}

static const tessera_param secret_params[] = {
    {"text", TESSERA_PARAM_STRING, 1, NULL, "A value nobody else may see."},
    {"output", TESSERA_PARAM_STRING, 1, NULL, "What it prints."},
};

static const tessera_param scan_params[] = {
    {"reversed_needles", TESSERA_PARAM_STRING_LIST, 1, NULL,
     "The strings to look for, each written backwards."},
};

/* Bytes that would take over a terminal (clear the screen, set the title,
 * return the carriage, start a row of their own) and are not UTF-8. */
static const char raw_bytes[] = "ok\033[2J\033]0;owned\007\r\n    7  fake  row  succeeded\n\377\376";

/* Sets the result to raw_bytes and prints them. */
static int hostile_raw_result(const tessera_host *host, tessera_task *task)
{
    host->set_result(task, raw_bytes, sizeof raw_bytes - 1);
    fwrite(raw_bytes, 1, sizeof raw_bytes - 1, stdout);
    return TESSERA_OK;
}

/* Fails and says the failure is permanent (ABI 1.2). */
/* For isolation: pooled. Prints "count N process T leftover L", where N
 * counts the microtasks this process ran (its memory persists in a pooled
 * process), T is drawn at random when the process runs its first one, and
 * L says whether the process an earlier microtask left running still
 * exists ("none" when none was left). Its item then says what it does:
 * "fail" returns 3, "segv" writes through NULL, "spin" burns CPU until its
 * limit, "leave" leaves a child running and returns, "tmp" writes a file
 * in /tmp; anything else succeeds. */
/* The entries of /tmp, but those whose names start with a dot. */
static int tmp_entries(void)
{
    int entries = 0;
    DIR *tmp = opendir("/tmp");
    for (struct dirent *entry; tmp != NULL && (entry = readdir(tmp)) != NULL;)
        entries += entry->d_name[0] != '.';
    if (tmp != NULL)
        closedir(tmp);
    return entries;
}

static int hostile_pooled_probe(const tessera_host *host, tessera_task *task)
{
    static unsigned count;
    static unsigned long long token;
    static pid_t left;
    const char *item = host->item(task);
    if (count++ == 0 && syscall(SYS_getrandom, &token, sizeof token, 0) != (long)sizeof token)
        token = (unsigned long long)getpid();
    const char *leftover = "none";
    if (left != 0)
        leftover = kill(left, 0) == 0 ? "alive" : "gone";
    printf("count %u process %llx leftover %s tmp %d\n", count, token, leftover, tmp_entries());
    fflush(stdout);
    if (strcmp(item, "fail") == 0)
        return 3;
    if (strcmp(item, "segv") == 0)
        write_through(NULL);
    if (strcmp(item, "spin") == 0)
        while (forever)
            continue;
    if (strcmp(item, "tmp") == 0) {
        FILE *file = fopen("/tmp/pooled-probe", "w");
        if (file != NULL)
            fclose(file);
    }
    if (strcmp(item, "leave") == 0) {
        left = fork();
        if (left == 0) {
            setsid();
            for (;;)
                pause();
        }
    }
    return TESSERA_OK;
}


/* Counts the entries of a directory whose names start with a digit. */
static int numeric_entries(const char *path)
{
    int count = 0;
    DIR *directory = opendir(path);
    for (struct dirent *entry; directory != NULL && (entry = readdir(directory)) != NULL;)
        count += entry->d_name[0] >= '0' && entry->d_name[0] <= '9';
    if (directory != NULL)
        closedir(directory);
    return count;
}

/* What a microtask of a stem (isolation: process) sees of those before it:
 * prints its pid and its parent's in its namespace, the processes it can
 * signal in its namespace, its open descriptors, the System V shared memory segments
 * and whether the POSIX message queue /tessera-probe exist, and the
 * entries of /tmp. Its item says what it leaves behind: "shm" a segment,
 * "mq" the queue, "leave" a child running, "tmp" a file in /tmp. */
static int hostile_stem_probe(const tessera_host *host, tessera_task *task)
{
    const char *item = host->item(task);
    int segments = -1;
    FILE *shm = fopen("/proc/sysvipc/shm", "r");
    if (shm != NULL) {
        segments = 0;
        for (int c; (c = fgetc(shm)) != EOF;)
            segments += c == '\n';
        segments -= 1; /* the header */
        fclose(shm);
    }
    mqd_t queue = mq_open("/tessera-probe", O_RDONLY);
    bool has_queue = queue != (mqd_t)-1;
    if (has_queue)
        mq_close(queue);
    int tmp = tmp_entries();
    /* Less the directory's own descriptor. */
    int fds = numeric_entries("/proc/self/fd") - 1;
    /* Other processes of its namespace that it can signal (the stem is 1). */
    int others = 0;
    for (pid_t pid = 2; pid < 64; pid++)
        others += pid != getpid() && kill(pid, 0) == 0;
    printf("pid %d ppid %d others %d fds %d shm %d mq %s tmp %d\n", (int)getpid(), (int)getppid(),
           others, fds, segments, has_queue ? "yes" : "no", tmp);
    fflush(stdout);
    if (strcmp(item, "shm") == 0 && shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) == -1) {
        fprintf(stderr, "shmget: %s\n", strerror(errno));
        return 2;
    }
    if (strcmp(item, "mq") == 0) {
        mqd_t made = mq_open("/tessera-probe", O_CREAT | O_RDWR, 0600, NULL);
        if (made == (mqd_t)-1) {
            fprintf(stderr, "mq_open: %s\n", strerror(errno));
            return 2;
        }
        mq_close(made);
    }
    if (strcmp(item, "tmp") == 0) {
        FILE *file = fopen("/tmp/stem-probe", "w");
        if (file == NULL)
            return 2;
        fclose(file);
    }
    if (strcmp(item, "leave") == 0 && fork() == 0) {
        setsid();
        for (;;)
            pause();
    }
    return TESSERA_OK;
}

static int hostile_permanent(const tessera_host *host, tessera_task *task)
{
    fputs("about to fail for good\n", stderr);
    host->fail_permanently(task, "the item is malformed; retrying will not help");
    return 5;
}

static const tessera_param echo_params[] = {
    {"text", TESSERA_PARAM_STRING, 1, NULL, "Text echoed in the result."},
    {"count", TESSERA_PARAM_INTEGER, 0, "1", "A number echoed in the result."},
};

/* An executor without parameters. */
#define EXECUTOR(name, function, text) {name, text, NULL, 0, function}

static const tessera_executor hostile_executors[] = {
    EXECUTOR("ok", hostile_ok, "Sets the result to the item and prints \"ok <item>\"."),
    EXECUTOR("fail", hostile_fail, "Prints to standard error and returns 3."),
    EXECUTOR("segfault", hostile_segfault, "Writes through a NULL pointer."),
    EXECUTOR("abort", hostile_abort, "Calls abort()."),
    EXECUTOR("spin", hostile_spin, "Burns CPU forever."),
    EXECUTOR("sleep_ignore_term", hostile_sleep_ignore_term,
             "Ignores SIGTERM and sleeps forever."),
    EXECUTOR("balloon", hostile_balloon, "Allocates memory until it runs out, then crashes."),
    EXECUTOR("flood", hostile_flood, "Writes to standard output forever."),
    EXECUTOR("progress", hostile_progress,
             "Reports progress 0.25, 0.5 and 1.0 and sets the result {\"done\":true}."),
    {"echo_params", "Sets the result to a JSON object of its parameters.", echo_params,
     sizeof echo_params / sizeof echo_params[0], hostile_echo_params},
    EXECUTOR("loglines", hostile_loglines, "Logs one line at each level."),
    EXECUTOR("forge_signal", hostile_forge_signal,
             "Writes a crash report on descriptor 3 by hand and exits with 139."),
    EXECUTOR("forge_peak", hostile_forge_peak,
             "Writes a 1 TiB peak-memory report on descriptor 3 by hand and exits with 1."),
    EXECUTOR("forge_xcpu", hostile_forge_xcpu,
             "Queues itself SIGXCPU with the kernel's code, well within its CPU limit."),
    EXECUTOR("forge_sigsys", hostile_forge_sigsys,
             "Queues itself SIGSYS with the code of a seccomp kill."),
    EXECUTOR("log_error", hostile_log_error,
             "Logs an error, writes more to standard error and returns 4."),
    EXECUTOR("term_self", hostile_term_self, "Sends itself SIGTERM, which it does not handle."),
    EXECUTOR("raw_result", hostile_raw_result,
             "Sets its result to, and prints, terminal escapes and bytes that are not UTF-8."),
    {"scan_memory", "Looks for strings in its own memory and returns those it finds.",
     scan_params, sizeof scan_params / sizeof scan_params[0], hostile_scan_memory},
    {"hold_secret", "Prints its output, reports progress 0.5 and sleeps.", secret_params,
     sizeof secret_params / sizeof secret_params[0], hostile_hold_secret},
    EXECUTOR("task_info", hostile_task_info,
             "Sets the result to a JSON object of its run, job, stage, attempt, index, item, "
             "input, run directory, item field x and chunk items."),
    EXECUTOR("read_input", hostile_read_input,
             "Sets the result to the content of the stage's input file."),
    EXECUTOR("permanent", hostile_permanent,
             "Calls fail_permanently() and returns 5."),
    EXECUTOR("pooled_probe", hostile_pooled_probe,
             "Prints how many microtasks its process ran and a token of the process; its item "
             "says how it misbehaves (fail, segv, spin, leave, tmp)."),
    EXECUTOR("stem_probe", hostile_stem_probe,
             "Prints what it sees of earlier microtasks (processes, descriptors, IPC objects, "
             "/tmp); its item says what it leaves behind (shm, mq, leave, tmp)."),
};

static const tessera_plugin hostile_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "hostile",
    .version = "1.0",
    .description = "Executors that misbehave on purpose, for the test suite.",
    .executors = hostile_executors,
    .executor_count = sizeof hostile_executors / sizeof hostile_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &hostile_plugin;
}
