"""A process that is its own hostile "agent": it listens where the CLI looks for the agent of this pid.

Usage: fake_agent.py MODE      (run with flight_profiler importable: it asks it for the socket path)
It passes the CLI's peer check (it is the target process), then misbehaves:
  escapes     valid results full of escapes, OSC 52/8, BiDi and rich markup; a hostile error
  flood       an event line that never ends
  big         one complete line far over the client's limit
  deep        an event nested 100000 levels deep
  malformed   a line that is not JSON
  fields      an event that lacks what the renderer needs
  drip_hello  the handshake answer, one byte every 0.2 s
  drip_event  a good handshake, then an event one byte every 0.2 s (prints "running" to stdout)
Prints "ready" once listening.
"""

import json
import os
import socket
import sys
import threading
import time

from flight_profiler.attach import paths
from flight_profiler.attach.target import inspect

MODE = sys.argv[1]
ESC = "\x1b]0;pwned\x07\x1b]52;c;aWQK\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\u202e[red]x[/red]"
HELLO = {
    "type": "hello",
    "protocol": 1,
    "pid": os.getpid(),
    "python": "3.11.0",
    "executable": "x",
    "agent_version": "0",
}


def value(text):
    return {
        "t": "Evil" + ESC,
        "kind": "object",
        "attrs": {"a" + ESC: {"r": "<" + ESC + ">"}, "s": {"t": "str", "v": ESC}},
    }


def hostile_events(command, request):
    if command == "getglobal":
        return [{"name": "g" + ESC, "value": value(ESC)}]
    if command == "vmtool":
        return [{"action": "getInstances", "count": 1, "class": "C" + ESC, "instances": [value(ESC)]}]
    if command == "module":
        return [{"path": request.get("path", ""), "modules": ["m" + ESC]}]
    if command == "console":
        return [{"output": ESC + "\n", "value": ESC, "error": ESC}]
    if command == "mem":
        return [
            {
                "action": "summary",
                "objects": 1,
                "size": 10,
                "distinct": 1,
                "seconds": 0.1,
                "types": [{"type": "T" + ESC, "count": 1, "size": 10}],
            }
        ]
    if command == "stack":
        frame = {"file": "f" + ESC, "line": 1, "name": "n" + ESC}
        task = {"name": "t" + ESC, "coro": "c" + ESC, "frames": [frame]}
        return [{"loops": [{"loop": "l" + ESC, "running": True, "tasks": [task]}]}]
    return []


def send(conn, msg):
    conn.sendall(json.dumps(msg).encode() + b"\n")


def drip(conn, data):
    for index in range(len(data)):
        conn.sendall(data[index : index + 1])
        time.sleep(0.2)


def serve(conn):
    reader = conn.makefile("rb")
    hello = json.loads(reader.readline())
    assert hello["type"] == "hello"
    if MODE == "drip_hello":
        drip(conn, json.dumps(HELLO).encode() + b"\n")
        return
    send(conn, HELLO)
    for line in reader:
        msg = json.loads(line)
        if msg["type"] == "detach":
            send(conn, {"type": "end", "job": 0, "status": "ok"})
            return
        if msg["type"] != "run":
            continue
        job = msg["job"]
        answer(conn, job, msg["command"], msg["request"])


def answer(conn, job, command, request):
    if MODE == "escapes":
        if command == "watch":
            send(conn, {"type": "end", "job": job, "status": "error", "error": "failed " + ESC + "\nforged line"})
            return
        for data in hostile_events(command, request):
            send(conn, {"type": "event", "job": job, "data": data})
        send(conn, {"type": "end", "job": job, "status": "ok"})
    elif MODE == "flood":
        conn.sendall(b'{"type":"event","job":%d,"data":{"x":"' % job)
        chunk = b"A" * 65536
        while True:
            conn.sendall(chunk)
    elif MODE == "big":
        conn.sendall(b'{"type":"event","job":%d,"data":{"x":[' % job + b"1," * (40 * 1024 * 1024) + b"1]}}\n")
    elif MODE == "deep":
        conn.sendall(b'{"type":"event","job":%d,"data":{"x":' % job + b"[" * 100000 + b"]" * 100000 + b"}}\n")
    elif MODE == "malformed":
        conn.sendall(b'{"type":"event","job":%d,"data":{\x1b]0;t\x07\n' % job)
    elif MODE == "fields":
        send(conn, {"type": "event", "job": job, "data": {"nothing": ESC}})
        send(conn, {"type": "end", "job": job, "status": "ok"})
    elif MODE == "drip_event":
        print("running", flush=True)
        drip(conn, json.dumps({"type": "event", "job": job, "data": {"x": "y" * 10000}}).encode() + b"\n")


def main():
    target = inspect(os.getpid())
    path = paths.from_client(target, paths.socket_in_target(target))
    directory = os.path.dirname(path)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    if os.path.lexists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    print("ready", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve_quietly, args=(conn,), daemon=True).start()
    finally:
        os.unlink(path)


def _serve_quietly(conn):
    try:
        serve(conn)
    except (OSError, ValueError, AssertionError):
        pass
    finally:
        conn.close()


main()
