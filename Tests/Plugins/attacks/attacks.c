/*
 * attacks.c - the "attacks" test plugin: one executor per way a microtask
 * might try to escape its sandbox. The sandbox tests run each attack twice,
 * confined and with `sandbox: none`, so every test proves both that the
 * confinement stops the attack and that the attack works without it.
 *
 * Convention: an executor that is stopped prints "blocked: <what>: <errno
 * text>" to standard error and returns BLOCKED (2); one that gets through
 * prints "escaped: <what>" to standard output and returns TESSERA_OK.
 * Attacks that are answered with a signal (SIGSYS, SIGXFSZ) just die.
 *
 * The `target` parameter names what to attack (a path, a pid, a port, an
 * abstract socket name), chosen by the test so that the unconfined run
 * harms nothing but a sacrificial target.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <termios.h>
#include <unistd.h>

#include <tessera/plugin.h>

#define BLOCKED 2

/* Always true; loops test it so the compiler keeps them and does not
 * complain that a function never returns. */
static volatile int forever = 1;

static int blocked(const char *what)
{
    fprintf(stderr, "blocked: %s: %s\n", what, strerror(errno));
    return BLOCKED;
}

static int escaped(const char *what)
{
    printf("escaped: %s\n", what);
    return TESSERA_OK;
}

static const char *target(const tessera_host *host, tessera_task *task)
{
    const char *value = host->param_string(task, "target");
    return value != NULL ? value : "";
}

/* Reads the file named by `target` (for example /etc/shadow). */
static int attack_read_file(const tessera_host *host, tessera_task *task)
{
    int fd = open(target(host, task), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked("open");
    char buffer[64];
    ssize_t n = read(fd, buffer, sizeof buffer);
    close(fd);
    if (n < 0)
        return blocked("read");
    return escaped("read");
}

/* Creates the file named by `target` (outside the writable paths). */
static int attack_write_file(const tessera_host *host, tessera_task *task)
{
    int fd = open(target(host, task), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return blocked("open");
    if (write(fd, "tessera\n", 8) != 8) {
        close(fd);
        return blocked("write");
    }
    close(fd);
    return escaped("write");
}

/* Connects to 127.0.0.1:<target>, where the test listens outside. */
static int attack_connect_tcp(const tessera_host *host, tessera_task *task)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return blocked("socket");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(target(host, task)))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&address, sizeof address);
    close(fd);
    return rc == 0 ? escaped("connect") : blocked("connect");
}

/* Connects to the abstract Unix socket "\0<target>" the test listens on. */
static int attack_connect_abstract(const tessera_host *host, tessera_task *task)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return blocked("socket");
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    const char *name = target(host, task);
    size_t length = strlen(name);
    if (length > sizeof address.sun_path - 1)
        length = sizeof address.sun_path - 1;
    memcpy(address.sun_path + 1, name, length);
    int rc = connect(fd, (struct sockaddr *)&address, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length));
    close(fd);
    return rc == 0 ? escaped("connect") : blocked("connect");
}

/* Connects to the Unix socket at the path <target>. */
static int attack_connect_unix(const tessera_host *host, tessera_task *task)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return blocked("socket");
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s", target(host, task));
    int rc = connect(fd, (struct sockaddr *)&address, sizeof address);
    close(fd);
    return rc == 0 ? escaped("connect") : blocked("connect");
}

/* Attaches to the process <target> with ptrace. */
static int attack_ptrace(const tessera_host *host, tessera_task *task)
{
    pid_t pid = (pid_t)atoi(target(host, task));
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0)
        return blocked("ptrace");
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return escaped("ptrace");
}

/* Sends SIGKILL to the process <target>. */
static int attack_kill(const tessera_host *host, tessera_task *task)
{
    pid_t pid = (pid_t)atoi(target(host, task));
    if (pid <= 1) {
        errno = EINVAL;
        return blocked("kill");
    }
    if (kill(pid, SIGKILL) != 0)
        return blocked("kill");
    return escaped("kill");
}

/* Pushes a character into the input of the terminal on fd <target> with
 * TIOCSTI. The test checks the errno: the filter answers EPERM before the
 * terminal check would answer ENOTTY. */
static int attack_tiocsti(const tessera_host *host, tessera_task *task)
{
    int fd = atoi(target(host, task));
    char c = 'x';
    if (ioctl(fd, TIOCSTI, &c) != 0)
        return blocked("ioctl TIOCSTI");
    return escaped("ioctl TIOCSTI");
}

/* Calls getpid through the 32-bit system call gate. The filter kills the
 * process for the foreign architecture. */
static int attack_int80(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
#if defined(__x86_64__)
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(20L) : "memory");
    if (result < 0) {
        errno = (int)-result;
        return blocked("int 0x80");
    }
    return escaped("int 0x80");
#else
    errno = ENOSYS;
    return blocked("int 0x80");
#endif
}

/* Tries to become root again. */
static int attack_setuid(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    if (getuid() == 0)
        return escaped("already root");
    if (setuid(0) != 0)
        return blocked("setuid(0)");
    return escaped("setuid(0)");
}

/* Mounts a tmpfs on <target>. */
static int attack_mount(const tessera_host *host, tessera_task *task)
{
    const char *path = target(host, task);
    if (mount("tessera", path, "tmpfs", 0, "size=1m") != 0)
        return blocked("mount");
    umount2(path, MNT_DETACH);
    return escaped("mount");
}

/* Loads a kernel module (an empty image: the kernel rejects it as
 * malformed, EINVAL/ENOEXEC, when nothing stops the call itself). */
static int attack_load_module(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    static char image[64];
    if (syscall(SYS_init_module, image, sizeof image, "") != 0) {
        if (errno == EPERM)
            return blocked("init_module");
        return escaped("init_module reached the kernel's module loader");
    }
    return escaped("init_module");
}

/* Reads the memory of process <target> through /proc/<pid>/mem. */
static int attack_proc_mem(const tessera_host *host, tessera_task *task)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/maps", target(host, task));
    FILE *maps = fopen(path, "re");
    if (maps == NULL)
        return blocked("open maps");
    unsigned long start = 0;
    char perms[8] = "";
    int found = fscanf(maps, "%lx-%*x %7s", &start, perms);
    fclose(maps);
    if (found != 2)
        return blocked("parse maps");
    snprintf(path, sizeof path, "/proc/%s/mem", target(host, task));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked("open mem");
    char byte;
    ssize_t n = pread(fd, &byte, 1, (off_t)start);
    close(fd);
    if (n != 1)
        return blocked("read mem");
    return escaped("read mem");
}

/* Reports descriptors above 3 that the microtask inherited. */
static int attack_inherited_fds(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    int found = 0;
    for (int fd = 4; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) != -1) {
            printf("inherited fd %d\n", fd);
            found++;
        }
    }
    if (found == 0) {
        errno = EBADF;
        return blocked("inherited descriptors");
    }
    return escaped("inherited descriptors");
}

/* Creates a user namespace to get capabilities back. */
static int attack_unshare_user(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    if (unshare(CLONE_NEWUSER) != 0)
        return blocked("unshare(CLONE_NEWUSER)");
    return escaped("unshare(CLONE_NEWUSER)");
}

/* Leaves a double-forked, setsid'd grandchild named "tessera-escapee"
 * behind and returns at once; the test looks for it afterwards. */
static int attack_daemonize(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    pid_t child = fork();
    if (child < 0)
        return blocked("fork");
    if (child == 0) {
        setsid();
        if (fork() == 0) {
            prctl(PR_SET_NAME, "tessera-escapee");
            for (int fd = 0; fd < 4; fd++)
                close(fd);
            for (;;)
                pause();
        }
        _exit(0);
    }
    waitpid(child, NULL, 0);
    return escaped("left a grandchild behind");
}

/* Forks until fork fails, children included, then waits to be killed. */
static int attack_fork_bomb(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    int children = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            children = 0;
            continue;
        }
        if (++children > 100000)
            break;
    }
    fprintf(stderr, "blocked: fork after %d children: %s\n", children, strerror(errno));
    while (forever)
        pause();
    return BLOCKED;
}

/* Writes to a file in /tmp until the file size limit stops it. */
static int attack_file_bomb(const tessera_host *host, tessera_task *task)
{
    (void)host;
    (void)task;
    int fd = open("/tmp/tessera-file-bomb", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return blocked("open");
    static char block[65536];
    for (;;) {
        if (write(fd, block, sizeof block) < 0)
            return blocked("write");
    }
}

/* Opens descriptors until the limit; the result is how many it got. */
static int attack_fd_exhaustion(const tessera_host *host, tessera_task *task)
{
    int count = 0;
    while (open("/dev/null", O_RDONLY) >= 0)
        count++;
    char text[32];
    int length = snprintf(text, sizeof text, "%d", count);
    host->set_result(task, text, (size_t)length);
    return blocked("open");
}

static const tessera_param target_param[] = {
    {"target", TESSERA_PARAM_STRING, 0, "", "What to attack: a path, pid, port or socket name."},
};

#define ATTACK(name, function, description) {name, description, target_param, 1, function}

static const tessera_executor attack_executors[] = {
    ATTACK("read_file", attack_read_file, "Reads the file named by target."),
    ATTACK("write_file", attack_write_file, "Creates the file named by target."),
    ATTACK("connect_tcp", attack_connect_tcp, "Connects to 127.0.0.1:target."),
    ATTACK("connect_abstract", attack_connect_abstract, "Connects to the abstract Unix socket target."),
    ATTACK("connect_unix", attack_connect_unix, "Connects to the Unix socket at the path target."),
    ATTACK("ptrace", attack_ptrace, "Attaches to process target with ptrace."),
    ATTACK("kill", attack_kill, "Sends SIGKILL to process target."),
    ATTACK("tiocsti", attack_tiocsti, "Pushes input into the terminal on fd target."),
    ATTACK("int80", attack_int80, "Makes a 32-bit system call with int 0x80."),
    ATTACK("setuid", attack_setuid, "Calls setuid(0)."),
    ATTACK("mount", attack_mount, "Mounts a tmpfs on target."),
    ATTACK("load_module", attack_load_module, "Calls init_module."),
    ATTACK("proc_mem", attack_proc_mem, "Reads the memory of process target."),
    ATTACK("inherited_fds", attack_inherited_fds, "Lists descriptors above 3."),
    ATTACK("unshare_user", attack_unshare_user, "Creates a user namespace."),
    ATTACK("daemonize", attack_daemonize, "Leaves a setsid'd grandchild behind."),
    ATTACK("fork_bomb", attack_fork_bomb, "Forks without end."),
    ATTACK("file_bomb", attack_file_bomb, "Writes a file without end."),
    ATTACK("fd_exhaustion", attack_fd_exhaustion, "Opens descriptors until refused."),
};

static const tessera_plugin attacks_plugin = {
    .abi_major = TESSERA_ABI_MAJOR,
    .abi_minor = TESSERA_ABI_MINOR,
    .name = "attacks",
    .version = "1.0",
    .description = "Sandbox escape attempts, for the tests.",
    .executors = attack_executors,
    .executor_count = sizeof attack_executors / sizeof attack_executors[0],
};

const tessera_plugin *tessera_plugin_init(const tessera_host *host)
{
    (void)host;
    return &attacks_plugin;
}
