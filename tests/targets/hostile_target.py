"""Targets that make life hard for an agent (tests/integration/test_hostile_env.py).

Usage: hostile_target.py SCENARIO [ARG]
  plain          main thread sleeps in a loop (run it with -X importtime -v)
  patched        json.dumps/json.loads and socket.socket.sendall raise; the app itself keeps working
  nofd           RLIMIT_NOFILE lowered and every descriptor taken (opened until EMFILE)
  gilheld SECS   the main thread keeps the GIL in a C call for SECS seconds, then sleeps in Python;
                 with "stdin" for SECS, until a byte arrives on stdin (the test says when it is done)
  gevent         gevent.monkey.patch_all(), a StreamServer whose handler never yields
  eventlet       eventlet.monkey_patch(), eventlet.serve with a handler that never yields
  gilonusr2 SECS like plain; SIGUSR2 makes the main thread keep the GIL in a C call for SECS seconds
                 ("stdin": until a byte arrives on stdin)
  busy2          two CPU-bound threads (the main one and a worker); SIGUSR2 runs a full collection,
                 then prints "modules N NAMES"
  nosocket       a seccomp filter makes socket() fail with EPERM, as a sandboxed service's may (x86-64);
                 SIGUSR2 prints "modules N NAMES"
  socketkill     a seccomp filter kills the process at socket() (systemd's SystemCallFilter=~@network-io)
  mountkill      a seccomp filter kills the process at mount(), a call we never make
  aslimit        RLIMIT_AS (ulimit -v) set 40 MB above its size, then filled to 2 MB short of it
  oom            calls tick() in a loop; SIGUSR2 makes it allocate (and touch) 1 MB at a time without end
Prints "ready <port or fd count>" when ready, and "released" (gilheld) once the GIL is free again.
SIGUSR1 makes the process exit 0 (proves the main thread still runs Python and handles signals).
Stdlib only (gevent for its scenario); Python 3.8+.
"""

import gc
import os
import signal
import sys
import time


def on_usr1(signum, frame):
    sys.stdout.write("woke\n")
    sys.stdout.flush()
    os._exit(0)


def patched():
    import json
    import socket

    def refuse(*args, **kwargs):
        raise RuntimeError("patched by the app")

    json.dumps = refuse
    json.loads = refuse
    socket.socket.sendall = refuse
    print("ready 0", flush=True)


def nofd():
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    while True:
        try:
            held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            break
    print("ready %d" % len(held), flush=True)
    return held


def gilheld(seconds):
    import ctypes

    libc = ctypes.PyDLL(None)  # PyDLL: its calls keep the GIL
    print("ready 0", flush=True)
    if seconds == "stdin":
        libc.read(0, ctypes.create_string_buffer(1), 1)  # one C call: no bytecode runs until the test writes
    else:
        libc.sleep(int(seconds))
    print("released", flush=True)


def gevent_server():
    from gevent import monkey

    monkey.patch_all()
    from gevent.server import StreamServer

    def handler(sock, address):
        counter = 0
        while True:  # never yields: the hub, and every greenlet, is stuck from here on
            counter += 1

    server = StreamServer(("127.0.0.1", 0), handler)
    server.start()
    print("ready %d" % server.server_port, flush=True)
    server.serve_forever()


def on_usr2(signum, frame):
    gc.collect()  # what the target's own collector would take back in time: not kept, not a leak
    names = sorted(sys.modules)
    sys.stdout.write("modules %d %s\n" % (len(names), ",".join(names)))
    sys.stdout.flush()


def hold_gil_on_usr2(seconds):
    import ctypes

    def hold(signum, frame):
        sys.stdout.write("holding\n")
        sys.stdout.flush()
        if seconds == "stdin":  # until a byte arrives on stdin (the test says when it is done)
            ctypes.PyDLL(None).read(0, ctypes.create_string_buffer(1), 1)
        else:
            ctypes.PyDLL(None).sleep(int(seconds))
        sys.stdout.write("released\n")
        sys.stdout.flush()

    signal.signal(signal.SIGUSR2, hold)
    print("ready 0", flush=True)


def busy2():
    import threading

    def spin():
        counter = 0
        while True:
            counter += 1

    threading.Thread(target=spin, name="busy-0", daemon=True).start()
    signal.signal(signal.SIGUSR2, on_usr2)
    print("ready 0", flush=True)
    counter = 0
    while True:
        counter += 1


SECCOMP_ACTIONS = {"eperm": 0x00050000 | 1, "kill": 0x80000000}  # SECCOMP_RET_ERRNO | EPERM, KILL_PROCESS
SYSCALLS = {"socket": 41, "mount": 165}  # x86-64


def no_sockets(call="socket", action="eperm"):
    """Forbid one system call to every thread from now on (seccomp: a filter of four BPF instructions):
    refused with EPERM, or the process killed."""
    import ctypes
    import struct

    program = [
        (0x20, 0, 0, 0),  # load the system call's number
        (0x15, 0, 1, SYSCALLS[call]),  # that call? then the next, else skip it
        (0x06, 0, 0, SECCOMP_ACTIONS[action]),
        (0x06, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *step) for step in program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS, which a filter needs
    fprog = SockFprog(len(program), ctypes.addressof(code))
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()  # SECCOMP_MODE_FILTER
    signal.signal(signal.SIGUSR2, on_usr2)
    print("ready 0", flush=True)
    return code


def address_space_limit():
    """Its address space limited, and nearly all of it in use: a new thread's stack (8 MB) no longer fits."""
    import resource

    with open("/proc/self/status") as fh:
        size = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + (40 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
    held = []
    while True:
        try:
            held.append(bytearray(1 << 20))
        except MemoryError:
            break
    del held[-2:]
    print("ready %d" % len(held), flush=True)
    return held


GROW = []


def tick():
    return len(GROW)


def grow_on_usr2():
    """Until the OOM killer comes: what a leak does in a container with a memory limit."""

    def grow(signum, frame):
        while True:
            GROW.append(bytearray(1 << 20))  # bytearray(n) is zero-filled: its pages are touched

    signal.signal(signal.SIGUSR2, grow)
    print("ready 0", flush=True)
    while True:
        tick()
        time.sleep(0.02)


def eventlet_server():
    import warnings

    warnings.simplefilter("ignore")  # eventlet's deprecation notice
    import eventlet

    eventlet.monkey_patch()

    def handler(sock, address):
        counter = 0
        while True:  # never yields
            counter += 1

    server = eventlet.listen(("127.0.0.1", 0))
    print("ready %d" % server.getsockname()[1], flush=True)
    eventlet.serve(server, handler)


# scenarios that run the process themselves, never returning
OWN_LOOP = {"gevent": gevent_server, "eventlet": eventlet_server, "busy2": busy2, "oom": grow_on_usr2}
# scenarios that set the process up (what they return is kept), then sleep in the main loop below
SET_UP = {
    "plain": lambda: print("ready 0", flush=True),
    "patched": patched,
    "nofd": nofd,
    "nosocket": no_sockets,
    "socketkill": lambda: no_sockets("socket", "kill"),
    "mountkill": lambda: no_sockets("mount", "kill"),
    "aslimit": address_space_limit,
    "gilonusr2": lambda: hold_gil_on_usr2(sys.argv[2]),
    "gilheld": lambda: gilheld(sys.argv[2]),
}


def main():
    scenario = sys.argv[1]
    signal.signal(signal.SIGUSR1, on_usr1)
    if scenario in OWN_LOOP:
        OWN_LOOP[scenario]()
        return
    held = SET_UP[scenario]()
    while True:
        time.sleep(0.06 if isinstance(held, list) else 0.05)


if __name__ == "__main__":
    main()
