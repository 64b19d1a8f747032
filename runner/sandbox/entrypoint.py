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


def run():
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    copy_inputs()
    started = time.time()
    child = subprocess.Popen(
        [sys.executable, "-u", CODE],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=WORKDIR,
        start_new_session=True,  # its own process group: one killpg reaches everything it forked
        preexec_fn=limit_child,
    )
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
    run()
