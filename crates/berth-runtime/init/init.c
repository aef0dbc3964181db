/*
 * docker-init for berth's `--init`: a minimal PID 1 in the container (what tini does for Docker).
 *
 *   /sbin/docker-init -- command [args...]
 *
 * - runs `command` as its only direct child;
 * - forwards every signal it receives (except SIGCHLD) to that child: as PID 1 of a PID namespace
 *   it would otherwise ignore signals it has no handler for, so `docker stop` would wait for the
 *   timeout;
 * - reaps every process re-parented to it (orphans), so no zombies pile up;
 * - exits with the child's status: its exit code, or 128 + the signal that killed it.
 *
 * Signals are blocked and taken with sigwaitinfo(2): blocked signals are queued even for a
 * namespace's init, and there is no signal handler (no async-signal-safety to get wrong).
 * Built static (no libc in the image is needed) by build.rs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int status_code(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: %s -- command [args...]\n", argv[0]);
        return 2;
    }

    sigset_t all, old;
    sigfillset(&all);
    /* Faults must stay deliverable to ourselves. */
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGABRT);
    sigdelset(&all, SIGTRAP);
    sigdelset(&all, SIGSYS);
    /* Background reads/writes on the terminal must not stop the init. */
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    if (sigprocmask(SIG_SETMASK, &all, &old) != 0) {
        perror("docker-init: sigprocmask");
        return 1;
    }

    pid_t child = fork();
    if (child < 0) {
        perror("docker-init: fork");
        return 1;
    }
    if (child == 0) {
        signal(SIGTTIN, SIG_DFL);
        signal(SIGTTOU, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], &argv[first]);
        int err = errno;
        fprintf(stderr, "docker-init: exec %s: %s\n", argv[first], strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    }

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            perror("docker-init: sigwaitinfo");
            return 1;
        }
        if (sig != SIGCHLD) {
            /* ESRCH: the child is gone and about to be reaped. */
            kill(child, sig);
            continue;
        }
        /* SIGCHLD: reap everything that has exited (signals coalesce). */
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);
            if (p <= 0)
                break;
            if (p == child)
                return status_code(status);
        }
    }
}
