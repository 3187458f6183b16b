/* An application that embeds CPython, as uwsgi, mod_wsgi or a game engine does: the process's
 * executable is not python, libpython is a shared library it links. Runs a script in the main
 * interpreter, or with --sub in a sub-interpreter (mod_wsgi's default for an application).
 *
 *   embed_host [--sub] SCRIPT [ARGS...]     exits with the script's status
 */
#include <Python.h>
#include <string.h>

static int run(const char *path, int argc, char **argv) {
    PyObject *sys_argv = PyList_New(0);
    for (int i = 0; i < argc; i++) {
        PyObject *item = PyUnicode_DecodeFSDefault(argv[i]);
        PyList_Append(sys_argv, item);
        Py_DECREF(item);
    }
    PySys_SetObject("argv", sys_argv);
    Py_DECREF(sys_argv);
    FILE *fh = fopen(path, "r");
    if (fh == NULL) {
        perror(path);
        return 2;
    }
    return PyRun_SimpleFileExFlags(fh, path, 1, NULL) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int sub = argc > 1 && strcmp(argv[1], "--sub") == 0;
    if (argc < 2 + sub) {
        fprintf(stderr, "usage: %s [--sub] SCRIPT [ARGS...]\n", argv[0]);
        return 2;
    }
    Py_Initialize();
    int status;
    if (sub) {
        PyThreadState *main_state = PyThreadState_Get();
        PyThreadState *state = Py_NewInterpreter();
        status = run(argv[2], argc - 2, argv + 2);
        Py_EndInterpreter(state);
        PyThreadState_Swap(main_state);
    } else {
        status = run(argv[1], argc - 1, argv + 1);
    }
    if (Py_FinalizeEx() < 0 && status == 0)
        status = 120;
    return status;
}
