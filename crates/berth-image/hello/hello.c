/*
 * hello: the only file of berth's built-in "hello-world" image.
 *
 * A freestanding static program: no libc, two raw system calls (write, exit_group), so the binary
 * is a few hundred bytes and runs on any Linux of its architecture. Built by build.rs with
 * `cc -static -nostdlib -Os`.
 */

static const char message[] =
    "\n"
    "Hello from berth!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, berth took the following steps:\n"
    " 1. The berth client contacted the berth daemon.\n"
    " 2. The berth daemon found the \"hello-world\" image built in: no registry\n"
    "    was needed.\n"
    " 3. The berth daemon created a new container from that image which runs the\n"
    "    executable that produces the output you are currently reading.\n"
    " 4. The berth daemon streamed that output to the berth client, which sent it\n"
    "    to your terminal.\n"
    "\n"
    "To try something more ambitious, you can import a root filesystem and run a\n"
    "shell in it:\n"
    " $ tar -C /path/to/rootfs -c . | berth import - myimage\n"
    " $ berth run -it myimage sh\n"
    "\n"
    "For more examples and ideas, see berth's README.\n"
    "\n";

#if defined(__x86_64__)
#define SYS_WRITE 1
#define SYS_EXIT_GROUP 231
static long syscall3(long n, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
#define SYS_WRITE 64
#define SYS_EXIT_GROUP 94
static long syscall3(long n, long a, long b, long c) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#else
#error "hello.c supports x86_64 and aarch64"
#endif

__attribute__((noreturn)) void _start(void) {
    const char *p = message;
    long left = sizeof message - 1;
    while (left > 0) {
        long n = syscall3(SYS_WRITE, 1, (long)p, left);
        if (n <= 0) {
            syscall3(SYS_EXIT_GROUP, 1, 0, 0);
        }
        p += n;
        left -= n;
    }
    syscall3(SYS_EXIT_GROUP, 0, 0, 0);
    for (;;) {
    }
}
