"""A pre-fork server in the shape of gunicorn (os.fork workers) or torchrun (spawned ranks).

    python gunicorn [--workers N]          # copied under that name: ps names the tree by it
    python torchrun --spawn [--workers N]  # children started as new interpreters with RANK set

Prints "ready <pid,...>" once every worker is up. Workers exit when their parent goes away.
"""

import os
import subprocess
import sys
import time

WORKERS = 2
STATE = {"role": "master", "requests": 0}


def serve_forever():
    parent = os.getppid()
    while os.getppid() == parent:
        STATE["requests"] += 1
        time.sleep(0.05)


def fork_workers(count):
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            STATE["role"] = "worker"
            try:
                serve_forever()
            finally:
                os._exit(0)
        pids.append(pid)
    return pids


def spawn_workers(count):
    children = []
    for rank in range(count):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(count))
        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"], env=env, stdout=subprocess.PIPE
        )
        child.stdout.readline()
        children.append(child.pid)
    return children


def main():
    if "--worker" in sys.argv:
        STATE["role"] = "worker"
        print("up", flush=True)
        serve_forever()
        return
    count = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else WORKERS
    pids = spawn_workers(count) if "--spawn" in sys.argv else fork_workers(count)
    time.sleep(0.2)
    print("ready 0 %s" % ",".join(str(pid) for pid in pids), flush=True)
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
