"""``flight_profiler k8s [-n NS] (POD | -l SELECTOR) [-c CONTAINER] -- <flight_profiler options>``.

Runs our client inside each pod through the user's own ``kubectl exec -i`` (their context,
auth plugins, RBAC and audit log; no listener, no tunnel, nothing cluster-wide of ours), with
``--json`` on the wire, and merges what comes back exactly like a local group (``fleet/merge``):
every target is named by its pod. The client in the pod is ``flight_profiler`` from the image
(``--remote-command``), or with ``--copy`` a zipapp of this install sent over the exec's standard
input to the pod's ``python3`` and unpacked into a private directory there for that run
(``fleet/zipapp``: no file at a name another user could plant or rewrite). At most
``--concurrency`` pods at a time.

With ``--debug-image IMAGE`` the client runs in an ephemeral debug container instead of the
application's own (``kubectl debug --target=CONTAINER --profile=general``): it shares the
application container's process namespace, has ``SYS_PTRACE`` from the profile, and the
application's image needs nothing of ours. The container is named after the image and kept
running (``sleep infinity``), so later calls ``kubectl exec`` into the same one instead of adding
another ephemeral container to the pod (they cannot be removed until the pod goes).

Everything a pod prints is untrusted: lines are bounded, must be our JSON envelope, and are
rendered through the commands' own renderers and ``safe_line`` like a local target's.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import shlex
import subprocess
import threading
import time
from typing import Any

from ..cli.runner import check_detach, parse_command
from ..cli.subcommands import Subcommand, add_output_options, make_output
from ..commands.spec import CommandSpec, number, split_command
from ..errors import FlightProfilerError, ProtocolError, UsageError
from ..render.safe import rich_proof, safe_line
from .merge import merger_for
from .runner import DEFAULT_CONCURRENCY
from .select import Target
from .sink import Sink

MAX_LINE = 8 << 20  # bytes of one JSON line from a pod
TAIL_BYTES = 64 << 10  # of what a pod's client writes to stderr: the last of it is kept, for its errors and notes
EXIT_WAIT = 10.0  # seconds for kubectl to exit once the pod's output ended
MAX_NOTES = 50  # a pod's notes relayed after a detach (one per target in it, as a rule)
GET_TIMEOUT = 60.0
DEBUG_COMMAND = ("sleep", "infinity")  # keeps the debug container for later calls


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pod", nargs="?", help="the pod (or -l SELECTOR)")
    parser.add_argument("-n", "--namespace", help="the namespace (default: kubectl's current one)")
    parser.add_argument("-l", "--selector", help="every running pod with these labels, e.g. app=web")
    parser.add_argument("-c", "--container", help="the container in each pod (default: kubectl's choice)")
    parser.add_argument(
        "--concurrency",
        type=number(int, 1, 64),
        default=DEFAULT_CONCURRENCY,
        help="pods worked on at a time (default %d)" % DEFAULT_CONCURRENCY,
    )
    parser.add_argument(
        "--copy",
        action="store_true",
        help="send this flight_profiler to each pod's python3 over kubectl exec's stdin (nothing is left in the pod)",
    )
    parser.add_argument(
        "--remote-command",
        default="flight_profiler",
        help="how the pod runs flight_profiler (default: flight_profiler; with --copy: python3)",
    )
    parser.add_argument(
        "--debug-image",
        metavar="IMAGE",
        help="run the client in an ephemeral debug container of this image (kubectl debug --target, "
        "--profile=general) that shares the application container's processes; reused by later calls",
    )
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to run (default: kubectl on PATH)")
    add_output_options(parser)


class _K8s(Subcommand):
    def main(self, argv: list[str]) -> int:
        """Our options before ``--``, the pod's flight_profiler options after it (never parsed as ours)."""
        cut = argv.index("--") if "--" in argv else len(argv)
        try:
            args = self.parser().parse_args(argv[:cut])
        except UsageError as exc:
            from ..cli.main import usage_error

            return usage_error(argv[:cut], exc)
        args.remote = argv[cut + 1 :]
        return self.run(args)


def _run(args: argparse.Namespace) -> int:
    output = make_output(args)
    try:
        remote, spec, request = _remote_words(args.remote)
        if (args.pod is None) == (args.selector is None):
            raise UsageError("k8s: give a pod or -l SELECTOR (one of them)")
        kube = Kubectl(args.kubectl, args.namespace, args.container, args.debug_image)
        pods = [(kube.namespace_of(args.pod), args.pod)] if args.pod else kube.pods(args.selector)
        if not pods:
            raise UsageError("k8s: no running pod matches -l %s" % safe_line(args.selector))
        program = shlex.split(args.remote_command) if args.remote_command != "flight_profiler" or not args.copy else []
        zipapp = None
        if args.copy:
            from .zipapp import archive, loader_words

            zipapp = archive()
            program = [*(program or ["python3"]), *loader_words(zipapp)]
    except FlightProfilerError as exc:
        output.error("k8s", str(exc))
        return exc.exit_code
    sink = Sink(output)
    sink.begin(_named(spec), merger_for(spec.name, request) if spec is not None else None, [])
    failed: set[int] = set()
    gate = threading.BoundedSemaphore(args.concurrency)
    threads = [
        threading.Thread(
            target=_one_pod, args=(kube, pod, index, [*program, *remote], zipapp, spec, sink, gate, failed), daemon=True
        )
        for index, pod in enumerate(pods)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short waits: Ctrl-C reaches us
    sink.end(failed)
    return 1 if failed else 0


def _remote_words(words: list[str]) -> tuple[list[str], CommandSpec | None, dict[str, Any]]:
    """The pod's command line (always ``--json``), checked here first: a bad one never reaches a pod.
    The spec is None for ``detach``, which is no command of an agent's but the client's own."""
    from . import wants_fleet
    from .cli import fleet_parser

    if not words:
        raise UsageError('k8s: give the command after --, e.g. -- --all --cmd "stack"')
    parsed = fleet_parser().parse_args(words)
    if parsed.cmd is None:
        raise UsageError('k8s runs one command per pod: add --cmd "<command>" after --')
    name, rest = split_command(parsed.cmd)  # as the pod's flight_profiler will read it (seeds' syntax, aliases)
    if not name:
        raise UsageError("unknown command ''; 'help' lists them")
    spec: CommandSpec | None = None
    request: dict[str, Any] = {}
    if name == "detach":  # the agents we started in the pods, removed from there too
        check_detach(rest)
    else:
        spec, request = parse_command(name, rest)
        if spec.interactive and not request.get("source"):
            raise UsageError("%s is interactive: give -c CODE" % spec.name)
    if not wants_fleet(words) and parsed.target is None:
        raise UsageError("k8s: say which processes in each pod: a pid, --tree PID, --select PATTERN or --all")
    if not wants_fleet(words):  # one pid: as a group of one, so its lines carry their target
        words = [*words, "-p", str(parsed.target)]
    return (words if parsed.json else [*words, "--json"]), spec, request


class Kubectl:
    """The user's kubectl, with the namespace and container they chose."""

    def __init__(
        self, program: str, namespace: str | None, container: str | None, debug_image: str | None = None
    ) -> None:
        self.program = program
        self.namespace = namespace
        self.container = container
        self.debug_image = debug_image
        self._debuggers: dict[tuple[str, str], str] = {}  # pod -> its debug container, once started

    def _ns(self, namespace: str | None = None) -> list[str]:
        chosen = namespace or self.namespace
        return ["-n", chosen] if chosen else []

    def namespace_of(self, pod: str) -> str:
        return self.namespace or "default"

    def pods(self, selector: str) -> list[tuple[str, str]]:
        argv = [self.program, "get", "pods", *self._ns(), "-l", selector, "-o", "json"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=GET_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError("k8s: cannot run %s: %s" % (safe_line(self.program), exc)) from None
        if proc.returncode != 0:
            raise UsageError("k8s: kubectl get pods failed: %s" % safe_line(_last_line(proc.stderr)))
        try:
            items = json.loads(proc.stdout)["items"]
            return [
                (str(item["metadata"].get("namespace") or self.namespace or "default"), str(item["metadata"]["name"]))
                for item in items
                if item.get("status", {}).get("phase") == "Running"
            ]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError("k8s: kubectl get pods -o json printed something else") from None

    def _container(self, pod: tuple[str, str]) -> list[str]:
        """Where our client runs: the debug container when there is one, else the chosen container."""
        chosen = self._debuggers.get(pod) or self.container
        return ["-c", chosen] if chosen else []

    def exec_argv(self, pod: tuple[str, str], command: list[str]) -> list[str]:
        return [self.program, "exec", "-i", *self._ns(pod[0]), pod[1], *self._container(pod), "--", *command]

    def _get_pod(self, pod: tuple[str, str]) -> dict[str, Any]:
        argv = [self.program, "get", "pod", *self._ns(pod[0]), pod[1], "-o", "json"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=GET_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise FlightProfilerError("kubectl get pod failed: %s" % _last_line(proc.stderr))
        try:
            found = json.loads(proc.stdout)
        except (ValueError, RecursionError):
            raise ProtocolError("kubectl get pod -o json printed something else") from None
        if not isinstance(found, dict):
            raise ProtocolError("kubectl get pod -o json printed something else")
        return found

    def ensure_debugger(self, pod: tuple[str, str]) -> None:
        """Start (or find) this pod's debug container and wait until it runs; no-op without --debug-image."""
        if self.debug_image is None:
            return
        described = self._get_pod(pod)
        target = self.container or _first_container(described)
        name = debugger_name(self.debug_image, target)
        state = _ephemeral_state(described, name)
        if state is None:
            self._start_debugger(pod, name, target)
        elif state != "running":
            raise FlightProfilerError(
                "the debug container %s in this pod has %s; ephemeral containers cannot be restarted: "
                "use another --debug-image tag or a new pod" % (name, state)
            )
        self._wait_running(pod, name)
        self._debuggers[pod] = name

    def _start_debugger(self, pod: tuple[str, str], name: str, target: str) -> None:
        assert self.debug_image is not None
        argv = [
            self.program,
            "debug",
            *self._ns(pod[0]),
            pod[1],
            "--image=%s" % self.debug_image,
            "--target=%s" % target,
            "--profile=general",
            "--container=%s" % name,
            "--",
            *DEBUG_COMMAND,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=GET_TIMEOUT, check=False)
        if proc.returncode != 0:
            raise FlightProfilerError("kubectl debug failed: %s" % _last_line(proc.stderr))

    def _wait_running(self, pod: tuple[str, str], name: str) -> None:
        deadline = time.monotonic() + GET_TIMEOUT
        while True:
            state = _ephemeral_state(self._get_pod(pod), name)
            if state == "running":
                return
            if (state is not None and state != "waiting") or time.monotonic() > deadline:
                raise FlightProfilerError("the debug container %s did not start (%s)" % (name, state or "not listed"))
            time.sleep(0.5)


def debugger_name(image: str, target: str) -> str:
    """One debug container per image and application container: later calls find and reuse it."""
    digest = hashlib.sha256(("%s\0%s" % (image, target)).encode()).hexdigest()[:8]
    return "flight-profiler-%s" % digest


def _first_container(described: dict[str, Any]) -> str:
    try:
        return str(described["spec"]["containers"][0]["name"])
    except (KeyError, IndexError, TypeError):
        raise ProtocolError("kubectl get pod: no containers listed; name one with -c") from None


def _ephemeral_state(described: dict[str, Any], name: str) -> str | None:
    """``running``, ``waiting``, ``terminated`` for our debug container, None when the pod has none by that name."""
    statuses = described.get("status", {}).get("ephemeralContainerStatuses") or []
    for status in statuses if isinstance(statuses, list) else []:
        if isinstance(status, dict) and status.get("name") == name:
            state = status.get("state")
            for key in ("running", "waiting", "terminated"):
                if isinstance(state, dict) and key in state:
                    return key
            return "waiting"
    if any(
        isinstance(spec, dict) and spec.get("name") == name
        for spec in described.get("spec", {}).get("ephemeralContainers") or []
    ):
        return "waiting"  # declared, no status yet
    return None


def _one_pod(
    kube: Kubectl,
    pod: tuple[str, str],
    index: int,
    command: list[str],
    zipapp: bytes | None,
    spec: CommandSpec | None,
    sink: Sink,
    gate: threading.BoundedSemaphore,
    failed: set[int],
) -> None:
    whole_pod = Target(0, -1, None, None, pod=pod, key=-(index + 1))  # errors of the pod itself
    with gate:
        try:
            kube.ensure_debugger(pod)
            _exec(kube, pod, index, command, zipapp, spec, sink, failed)
        except FlightProfilerError as exc:
            failed.add(whole_pod.key)
            sink.error(whole_pod, _named(spec), str(exc))
        except OSError as exc:
            failed.add(whole_pod.key)
            sink.error(whole_pod, _named(spec), "kubectl exec failed: %s" % exc)


def _exec(
    kube: Kubectl,
    pod: tuple[str, str],
    index: int,
    command: list[str],
    sent: bytes | None,
    spec: CommandSpec | None,
    sink: Sink,
    failed: set[int],
) -> None:
    """Run ``command`` in the pod, ``sent`` on its standard input (the zipapp of --copy), and hand its lines on."""
    stdin = subprocess.DEVNULL if sent is None else subprocess.PIPE
    proc = subprocess.Popen(kube.exec_argv(pod, command), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    if sent is not None:
        _send_in_background(proc, sent)
    stderr = _Tail(proc.stderr)  # drained beside stdout: a pod with much to say there must not block on it
    seen = 0
    try:
        while True:
            raw = proc.stdout.readline(MAX_LINE + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE:
                raise ProtocolError("the pod sent a line over %d bytes" % MAX_LINE)
            seen += _record(raw, pod, index, spec, sink, failed)
        # its output ended: kubectl is exiting. It was killed here when it had printed no line, which
        # a detach (notes on stderr only) never does: its status could then be lost to the kill
        proc.wait(EXIT_WAIT)
    except subprocess.TimeoutExpired:
        raise FlightProfilerError("kubectl exec did not end within %g s of the pod's last output" % EXIT_WAIT) from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    said = stderr.lines()
    last = said[-1] if said else "no message"
    if spec is None and proc.returncode == 0:  # detach answers in notes only: relay them with their pod
        for line in said[-MAX_NOTES:]:
            sink.output.note("pod %s/%s: %s" % (pod[0], pod[1], safe_line(line)))
        return
    if seen == 0:
        raise FlightProfilerError("no answer from flight_profiler in the pod (exit %d): %s" % (proc.returncode, last))
    if proc.returncode not in (0, 1):  # 1: a target failed, and said so in its own line
        raise FlightProfilerError("kubectl exec ended with status %d: %s" % (proc.returncode, last))


class _Tail:
    """The last ``TAIL_BYTES`` of a stream, read to its end on a thread of its own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._kept: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._thread = threading.Thread(target=self._drain, name="k8s-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for line in iter(lambda: self._stream.readline(TAIL_BYTES), b""):
                self._kept.append(line)
                self._size += len(line)
                while self._size > TAIL_BYTES and len(self._kept) > 1:
                    self._size -= len(self._kept.popleft())
        except (OSError, ValueError):
            pass

    def lines(self) -> list[str]:
        """What was kept, once the stream ended (the process was waited for: at most a moment more)."""
        self._thread.join(5.0)
        text = b"".join(list(self._kept)).decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()]


def _send_in_background(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write ``data`` to ``proc``'s standard input and close it, beside our reading of its output: a pod
    that answers before reading it all (no python3 there) must not leave us blocked on a full pipe."""

    def send() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
        except OSError:
            pass  # it ended first: what it printed says why
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    threading.Thread(target=send, name="k8s-send", daemon=True).start()


def _record(
    raw: bytes, pod: tuple[str, str], index: int, spec: CommandSpec | None, sink: Sink, failed: set[int]
) -> int:
    """One line from the pod, handed to the sink with its target; 1 when it was one of ours."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return 0  # not ours (a banner of the image's shell): ignored
    if not isinstance(record, dict) or record.get("schema") != 1 or "fleet" in record:
        return 1 if isinstance(record, dict) and "fleet" in record else 0  # we sum up ourselves
    target = _target(record.get("target"), pod, index)
    if "error" in record:
        failed.add(target.key)
        sink.error(target, _named(spec), str(record["error"]))
    elif isinstance(record.get("result"), dict):
        sink.result(target, _named(spec), record["result"], _rendered(spec, record["result"], sink))
    return 1


def _target(raw: Any, pod: tuple[str, str], index: int) -> Target:
    """The pod's target, named by its pod; pids are the pod's, so the key keeps pods apart."""
    if not isinstance(raw, dict):
        raw = {}

    def integer(name: str, default: int) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 31 else default

    role = raw.get("role") if raw.get("role") in ("master", "worker", "helper") else None
    rank = integer("rank", -1)
    pid = integer("pid", 0)
    return Target(pid, integer("ppid", -1), role, None if rank < 0 else rank, pod=pod, key=(index + 1) << 32 | pid)


def _named(spec: CommandSpec | None) -> str:
    return spec.name if spec is not None else "detach"


def _rendered(spec: CommandSpec | None, event: dict[str, Any], sink: Sink) -> Any:
    if sink.output.as_json or spec is None:
        return None
    try:
        return spec.render(rich_proof(event))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError):
        from rich.text import Text

        return Text("(a malformed %s result from the pod)" % spec.name, style="red")


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


SUBCOMMAND = _K8s(
    name="k8s",
    summary="Run one command in every selected Kubernetes pod through your kubectl exec, merged like a local group: "
    "flight_profiler k8s [-n NS] (POD | -l SELECTOR) -- --tree 1 --cmd stack (the pod's options after --).",
    add_arguments=_add_arguments,
    run=_run,
)
