/* A stand-in for a free-threaded CPython renamed to a plain name (tests/integration/test_platforms.py).
 *
 * It exports the C-API names an attach looks up, and the two only free-threaded builds export
 * (_Py_DecRefShared, _Py_MergeZeroLocalRefcount); built with -rdynamic into a file named like a
 * default build ("python3.13"). It runs no Python: the attach must refuse before it touches it.
 *
 *   fake spin     prints "ready <pid>" and spins (a main thread that is not parked in a system call:
 *                 3.14's way in, sys.remote_exec run by the target's own executable, is tried first)
 *   fake ...      anything else, as when run by a client: writes "ran" next to itself and exits 1
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

char _PyRuntime[4096];
int PyRun_SimpleString(const char *code) { (void)code; return -1; }
int Py_AddPendingCall(int (*func)(void *), void *arg) { (void)func; (void)arg; return -1; }
int PyGILState_Ensure(void) { return 0; }
void PyGILState_Release(int state) { (void)state; }
void _Py_DecRefShared(void *op) { (void)op; }
void _Py_MergeZeroLocalRefcount(void *op) { (void)op; }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        for (volatile unsigned long n = 0;; n++) {
        }
    }
    char marker[4096];
    snprintf(marker, sizeof marker, "%s.ran", argv[0]);
    FILE *f = fopen(marker, "a");
    if (f) fclose(f);
    return 1;
}
