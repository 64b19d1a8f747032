# gkexec sandbox entrypoint: runs the user's code and frames what it produces into one log stream.
#
# The Kubernetes logs API merges stdout and stderr and knows nothing of exit codes or files, so this
# program is the container's only writer to its stdout: it runs the code as a child process, and
# writes one record per line, "<tag>:<base64 payload>", which the runner decodes:
#
#   O  a chunk of the code's stdout            E  a chunk of the code's stderr
#   F  an output file header (JSON)            D  a chunk of the current output file's bytes
#   X  the end record (JSON: exit code, signal, timed out, truncation, in-pod timings)
#
# The end record is written last; a runner that has read it knows everything and need not wait for
# the kubelet to report the Pod finished. Standard library only: it must run on the stock
# python:3.11-slim image (and any image with python3 >= 3.8).
#
# Two ways to get the request. A cold sandbox (a Job) finds the code and inputs in its ConfigMap
# volume and its limits in the environment. A warm sandbox (a pre-started Pod of the warm pool,
# GKEXEC_REQUEST=stdin) waits for the request on stdin, sent by the runner over `pods/attach` in the
# same framing:
#
#   P  ping: answered at once with a P record, so the runner knows the stream works end to end
#   Q  the request header (JSON: timeout and caps)
#   C  a chunk of the code                     I  an input file header (JSON: path)
#   D  a chunk of the current input file       G  go: the request is complete
#
# A warm sandbox serves one request. Afterwards it never reads stdin again and never exits by
# itself (its Pod's restartPolicy is Always: exiting would restart it, in the same Pod), so the
# runner's delete, or the deadline set when it was claimed, ends it.
import base64
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time

CHUNK = 6 * 1024  # keeps every log line far below the container runtime's 16 KiB line split
OUT = sys.stdout.buffer


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


CODE = os.environ.get("GKEXEC_CODE", "/gkexec/code/main.py")
INPUTS = os.environ.get("GKEXEC_INPUTS", "/gkexec/code/inputs")
WORKDIR = os.environ.get("GKEXEC_WORKDIR", "/workspace")
OUTPUT_DIR = os.environ.get("GKEXEC_OUTPUT_DIR", "/workspace/output")
TIMEOUT = float(os.environ.get("GKEXEC_TIMEOUT_SECONDS", "300"))
MAX_OUTPUT = env_int("GKEXEC_MAX_OUTPUT_BYTES", 1 << 20)
MAX_FILES = env_int("GKEXEC_MAX_FILE_BYTES", 4 << 20)
MAX_PROCS = env_int("GKEXEC_MAX_PROCESSES", 0)
REQUEST = os.environ.get("GKEXEC_REQUEST", "configmap")


def emit(tag, payload):
    OUT.write(tag + b":" + base64.b64encode(payload) + b"\n")


def emit_json(tag, obj):
    emit(tag, json.dumps(obj, separators=(",", ":")).encode())


def copy_inputs():
    """Inputs arrive read-only in the ConfigMap volume; the code gets writable copies in its workdir."""
    if not os.path.isdir(INPUTS):
        return
    for root, _, files in os.walk(INPUTS, followlinks=True):
        for name in files:
            src = os.path.join(root, name)
            rel = os.path.relpath(src, INPUTS)
            dst = os.path.join(WORKDIR, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                while True:
                    buf = fin.read(1 << 16)
                    if not buf:
                        break
                    fout.write(buf)


def limit_child():
    if MAX_PROCS > 0:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCS, MAX_PROCS))
        except (ValueError, OSError):
            pass


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class BadRequest(Exception):
    pass


def safe_path(base, rel):
    """Joins a relative input path to base, refusing anything that would leave it."""
    if not rel or rel.startswith("/") or "\x00" in rel:
        raise BadRequest("bad input path %r" % rel)
    full = os.path.normpath(os.path.join(base, rel))
    if not full.startswith(base.rstrip("/") + "/"):
        raise BadRequest("input path %r leaves %s" % (rel, base))
    return full


def receive_request(stream):
    """Reads one framed request from stream (stdin), writing the code and inputs where the cold path
    finds them. Returns False if the stream ended before the first record."""
    global TIMEOUT, MAX_OUTPUT, MAX_FILES, MAX_PROCS
    code, current, seen = None, None, False
    for raw in stream:
        line = raw.rstrip(b"\r\n")
        if len(line) < 2 or line[1:2] != b":":
            raise BadRequest("not a request record")
        seen = True
        tag, data = line[:1], base64.b64decode(line[2:], validate=True)
        if tag == b"P":
            emit(b"P", b"")
            OUT.flush()
        elif tag == b"Q":
            q = json.loads(data)
            TIMEOUT = float(q.get("timeout_seconds", TIMEOUT))
            MAX_OUTPUT = int(q.get("max_output_bytes", MAX_OUTPUT))
            MAX_FILES = int(q.get("max_file_bytes", MAX_FILES))
            MAX_PROCS = int(q.get("max_processes", MAX_PROCS))
            os.makedirs(os.path.dirname(CODE), exist_ok=True)
            code = open(CODE, "wb")
        elif tag == b"C" and code is not None:
            code.write(data)
        elif tag == b"I" and code is not None:
            if current is not None:
                current.close()
            path = safe_path(WORKDIR, json.loads(data)["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            current = open(path, "wb")
        elif tag == b"D" and current is not None:
            current.write(data)
        elif tag == b"G" and code is not None:
            if current is not None:
                current.close()
            code.close()
            return True
        else:
            raise BadRequest("unexpected record %r" % tag)
    if seen:
        raise BadRequest("the request ended before its G record")
    return False


def serve_once():
    """The warm sandbox: start the code's interpreter at once, so that it is ready when the request
    comes; wait for one request on stdin; run it; then stay until deleted."""
    child, go = prestart()
    try:
        if not receive_request(sys.stdin.buffer):
            # The first attach ended without a request (stdinOnce closed stdin): nothing ran here,
            # so exiting is safe; the kubelet restarts the container, idle again.
            kill_group(child.pid)
            return
    except (BadRequest, ValueError, KeyError, OSError) as e:
        kill_group(child.pid)
        emit(b"E", ("gkexec: bad request: %s\n" % e).encode())
        emit_json(b"X", {"exit_code": 125, "signal": 0, "timed_out": False, "stdout_truncated": False,
                         "stderr_truncated": False, "files_truncated": False, "started_at": time.time(),
                         "finished_at": time.time(), "max_rss_kib": 0, "cpu_seconds": 0})
        OUT.flush()
        linger()
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    started = time.time()
    go.write(json.dumps({"code": CODE, "max_processes": MAX_PROCS}).encode())
    go.close()
    run(child, started)
    linger()


# STUB is the code's interpreter in a warm sandbox, started before the request: it waits for the
# go message on a pipe, then runs main.py as `python3 -u main.py` would (as __main__, with
# sys.argv and sys.path[0] set, tracebacks without its own frames).
STUB = r"""
import json, os, resource, sys
with os.fdopen(int(sys.argv[1]), "rb") as _f:
    _go = json.loads(_f.read() or b"null")
if not _go:
    raise SystemExit(0)
def _main(go):
    n = go.get("max_processes", 0)
    if n > 0:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        except (ValueError, OSError):
            pass
    path = go["code"]
    sys.argv[:] = [path]
    sys.path[0] = os.path.dirname(path)
    def hook(t, v, tb, _show=sys.__excepthook__):
        # Drop this stub's two frames (module level and _main), as if main.py had been run directly.
        for _ in range(2):
            tb = tb.tb_next if tb is not None else None
        _show(t, v.with_traceback(tb), tb)
    sys.excepthook = hook
    with open(path, "rb") as f:
        source = f.read()
    g = sys.modules["__main__"].__dict__
    builtins = g["__builtins__"]
    g.clear()
    g.update(__name__="__main__", __file__=path, __builtins__=builtins, __doc__=None,
             __loader__=None, __spec__=None, __package__=None, __cached__=None)
    exec(compile(source, path, "exec"), g)
_main(_go)
"""


def prestart():
    r, w = os.pipe()
    child = spawn([sys.executable, "-u", "-c", STUB, str(r)], pass_fds=(r,))
    os.close(r)
    return child, os.fdopen(w, "wb")


def linger():
    """A used warm sandbox must never serve again, nor restart in the same Pod: close its streams
    (which ends the runner's attach cleanly) and wait for the delete."""
    for f in (sys.stdin, sys.stdout, sys.stderr):
        try:
            f.close()
        except OSError:
            pass
    for fd in (0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        time.sleep(3600)


def spawn(argv, pass_fds=()):
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=WORKDIR,
        start_new_session=True,  # its own process group: one killpg reaches everything it forked
        preexec_fn=limit_child,
        pass_fds=pass_fds,
    )


def run_cold():
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    copy_inputs()
    started = time.time()
    run(spawn([sys.executable, "-u", CODE]), started)


def run(child, started):
    streams = {child.stdout.fileno(): [b"O", 0, False], child.stderr.fileno(): [b"E", 0, False]}
    sel = selectors.DefaultSelector()
    for fd in streams:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)

    deadline = started + TIMEOUT
    drain_until = None  # set once the child is gone: grandchildren may hold the pipes open
    timed_out = False
    while sel.get_map():
        now = time.time()
        if not timed_out and now >= deadline:
            timed_out = True
            kill_group(child.pid)
            drain_until = now + 1.0
        if drain_until is None and child.poll() is not None:
            kill_group(child.pid)
            drain_until = now + 1.0
        if drain_until is not None and now >= drain_until:
            break
        wait = min(deadline, drain_until or deadline) - now
        for key, _ in sel.select(timeout=max(0.0, min(wait, 0.25))):
            fd = key.fd
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(fd)
                continue
            state = streams[fd]
            room = MAX_OUTPUT - state[1]
            if room <= 0:
                state[2] = True
                continue
            if len(data) > room:
                data, state[2] = data[:room], True
            state[1] += len(data)
            for i in range(0, len(data), CHUNK):
                emit(state[0], data[i : i + CHUNK])
        OUT.flush()

    if child.poll() is None:
        kill_group(child.pid)
    code = child.wait()
    finished = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    files_truncated = emit_files()
    end = {
        "exit_code": code if code >= 0 else 128 - code,
        "signal": -code if code < 0 else 0,
        "timed_out": timed_out,
        "stdout_truncated": streams[child.stdout.fileno()][2],
        "stderr_truncated": streams[child.stderr.fileno()][2],
        "files_truncated": files_truncated,
        "started_at": started,
        "finished_at": finished,
        "max_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    emit_json(b"X", end)
    OUT.flush()


def emit_files():
    """Sends every regular file under OUTPUT_DIR, in path order, until MAX_FILES bytes are spent."""
    budget, truncated = MAX_FILES, False
    if not os.path.isdir(OUTPUT_DIR):
        return False
    paths = []
    for root, dirs, files in os.walk(OUTPUT_DIR):
        dirs.sort()
        for name in sorted(files):
            paths.append(os.path.join(root, name))
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        take = min(size, budget)
        rel = os.path.relpath(path, OUTPUT_DIR)
        emit_json(b"F", {"path": rel, "size": size, "truncated": take < size})
        truncated = truncated or take < size
        with open(path, "rb") as f:
            left = take
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                emit(b"D", data)
        budget -= take
    return truncated


if __name__ == "__main__":
    if REQUEST == "stdin":
        serve_once()
    else:
        run_cold()
