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
# A warm sandbox serves one request. Afterwards it never reads stdin again. Its runner deletes its
# Pod at once; if the runner is gone, the entrypoint exits LINGER seconds later, and its container,
# restarted in the same Pod (restartPolicy Always), finds the SPENT marker and never serves: a
# restarted container is what tells any runner, and `gkexec gc`, that the Pod is garbage. A
# sandbox held ready for a runner exits the same way when the runner's keepalive pings stop.
import base64
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time

# The wire, record by record, as internal/wire (tags.go) defines it for the runner's end; the Go test
# TestEntrypointSpeaksTheWire fails when the two tables differ, or when a tag below is written as a bare
# literal elsewhere in this file. Every record is one line, "<tag>:<base64 payload>".
T_STDOUT = b"O"  # sandbox -> runner: a chunk of the code's stdout
T_STDERR = b"E"  # sandbox -> runner: a chunk of the code's stderr
T_FILE = b"F"  # sandbox -> runner: an output file's header (JSON: path, size, truncated)
T_DATA = b"D"  # both ways: a chunk of the current file (output file, or input file of a request)
T_END = b"X"  # sandbox -> runner: the end record (JSON: END_FIELDS)
T_BEGIN = b"B"  # sandbox -> runner: what follows up to X is this execution's, whose request is all here (JSON: execution_id)
T_SESSION = b"S"  # runner -> sandbox: open a session (JSON: HELLO_FIELDS); sandbox -> runner: it is open
T_PING = b"P"  # both ways: a ping (JSON: PING_FIELDS, or empty), and its answer (JSON: ANSWER_FIELDS, or empty)
T_REQUEST = b"Q"  # runner -> sandbox: a request's header (JSON: REQUEST_FIELDS)
T_CODE = b"C"  # runner -> sandbox: a chunk of the code
T_INPUT = b"I"  # runner -> sandbox: an input file's header (JSON: path)
T_GO = b"G"  # runner -> sandbox: the request is complete
T_INTERRUPT = b"K"  # runner -> sandbox, in a session: interrupt the running execution

END_FIELDS = ("exit_code", "signal", "timed_out", "stdout_truncated", "stderr_truncated", "files_truncated",
              "started_at", "finished_at", "max_rss_kib", "cpu_seconds", "session_over", "refused")
REQUEST_FIELDS = ("timeout_seconds", "max_output_bytes", "max_file_bytes", "max_processes", "execution_id", "language")
HELLO_FIELDS = ("id", "idle_timeout_seconds", "max_lifetime_seconds", "max_processes", "exit_when_over", "language")
PING_FIELDS = ("keepalive_seconds", "replay")
ANSWER_FIELDS = ("session", "spent", "running", "idle_seconds")
OPENED_FIELDS = ("session", "refused")


def wire_table():
    """The table above, for TestEntrypointSpeaksTheWire."""
    tags = {k[2:].lower(): v.decode() for k, v in globals().items() if k.startswith("T_")}
    return {"tags": tags, "end": list(END_FIELDS), "request": list(REQUEST_FIELDS), "hello": list(HELLO_FIELDS),
            "ping": list(PING_FIELDS), "answer": list(ANSWER_FIELDS), "opened": list(OPENED_FIELDS), "languages": {k: {"file": v["file"], "program": v["program"]} for k, v in LANGUAGES.items()}}


def field(obj, fields, name, default):
    """obj[name] (default if absent) of a JSON record whose fields the wire names."""
    if name not in fields:
        raise KeyError("%s is not a field of this record on the wire" % name)
    return obj.get(name, default)


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
LANGUAGE = os.environ.get("GKEXEC_LANGUAGE", "python")

# LANGUAGES: how this sandbox runs a program in each language the wire names (internal/wire's
# Languages; TestEntrypointSpeaksTheWire keeps the two in step): the code's file name, the
# interpreter the image must have, and the command that runs the code once. SESSION_STUBS holds
# the programs that keep one interpreter for a session. Python needs nothing but this program's own
# interpreter; bash and Node.js must be on the image's PATH.
LANGUAGES = {
    "python": {"file": "main.py", "program": "python3", "run": [sys.executable, "-u"]},
    "bash": {"file": "main.sh", "program": "bash", "run": ["bash", "--noprofile", "--norc"]},
    "javascript": {"file": "main.js", "program": "node", "run": ["node"]},
}


def language_of(obj, fields):
    """The language a request or session names, refused unless this sandbox can run it: a name
    it does not know, or an interpreter the image lacks (the operator's image, not the caller's
    code, is then what must change)."""
    lang = str(field(obj, fields, "language", "") or "python")
    if lang not in LANGUAGES:
        raise BadRequest("language %r: this sandbox runs %s" % (lang, ", ".join(sorted(LANGUAGES))))
    if shutil.which(LANGUAGES[lang]["run"][0]) is None:
        raise BadRequest("language %s: the sandbox image has no %s on its PATH; run it on an image that has"
                         % (lang, LANGUAGES[lang]["program"]))
    return lang


def code_path(lang):
    """Where the code of a request in lang is written (cold: where its ConfigMap puts it)."""
    return os.path.join(os.path.dirname(CODE), LANGUAGES[lang]["file"])


# RECORD, while a session's execution runs, keeps the lines written for it, and LAST those of the
# execution before: a runner whose attach broke asks for them again (a ping with "replay").
RECORD, LAST = None, None


def emit(tag, payload):
    line = tag + b":" + base64.b64encode(payload) + b"\n"
    OUT.write(line)
    if RECORD is not None:
        RECORD[1].append(line)


def emit_json(tag, obj):
    emit(tag, json.dumps(obj, separators=(",", ":")).encode())


def emit_end(answer, started, finished, timed_out=False, out=None, files_truncated=False, **more):
    """Writes the end record of every execution, built here from its facts: answer holds the
    exit_code, signal, max_rss_kib and cpu_seconds known (0 for the others), out its Forwarder."""
    cut = out.truncated if out is not None else {}
    end = {"exit_code": answer.get("exit_code", 0), "signal": answer.get("signal", 0), "timed_out": timed_out,
           "stdout_truncated": cut.get(T_STDOUT, False), "stderr_truncated": cut.get(T_STDERR, False),
           "files_truncated": files_truncated, "started_at": started, "finished_at": finished,
           "max_rss_kib": answer.get("max_rss_kib", 0), "cpu_seconds": answer.get("cpu_seconds", 0)}
    end.update(more)
    unknown = set(end) - set(END_FIELDS)
    if unknown:
        raise KeyError("not fields of the end record on the wire: %s" % sorted(unknown))
    emit_json(T_END, end)
    OUT.flush()


def exit_status(code):
    """A child's return code as the end record has it: death by signal N is exit code 128 + N."""
    return {"exit_code": code if code >= 0 else 128 - code, "signal": -code if code < 0 else 0}


class Forwarder:
    """The code's stdout and stderr, sent on as O and E records of at most CHUNK bytes (one log
    line each) until cap bytes of a stream are sent; what is left out marks it truncated."""

    def __init__(self, child, cap):
        self.cap = cap
        self.tags = {child.stdout.fileno(): T_STDOUT, child.stderr.fileno(): T_STDERR}
        self.sent = dict.fromkeys(self.tags.values(), 0)
        self.truncated = dict.fromkeys(self.tags.values(), False)

    def read(self, fd, not_ready=BlockingIOError):
        """Forwards one read of fd and returns what it read (all of it, sent or not): b"" at EOF,
        None if the read raised not_ready."""
        try:
            data = os.read(fd, 1 << 16)
        except not_ready:
            return None
        tag = self.tags[fd]
        room = max(0, self.cap - self.sent[tag])
        if len(data) > room:
            self.truncated[tag] = True
        sent = data[:room]
        self.sent[tag] += len(sent)
        for i in range(0, len(sent), CHUNK):
            emit(tag, sent[i : i + CHUNK])
        return data

    def drain(self):
        """Forwards what the pipes hold now, without waiting for more (a read error ends a pipe's)."""
        for fd in self.tags:
            os.set_blocking(fd, False)
            while self.read(fd, OSError):
                pass
            os.set_blocking(fd, True)


def watch(fds):
    """A selector for reading fds, each made non-blocking: a select loop must never hang in a read."""
    sel = selectors.DefaultSelector()
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    return sel


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


# Runs in the child, before exec. A warm sandbox's child starts before its request and limits
# itself: the stub's _limit, a copy, because the stub is a string that cannot import this file.
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


def reap(child):
    """The child's return code; a child still running is killed first, with its process group."""
    code = child.poll()
    if code is None:
        kill_group(child.pid)
        code = child.wait()
    return code


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


class Lines:
    """Reads newline-terminated records from a raw fd, with a timeout, without Python's buffering
    (which select cannot see into)."""

    def __init__(self, fd):
        self.fd, self.buf, self.eof = fd, b"", False

    def fileno(self):
        return self.fd

    def pop(self):
        i = self.buf.find(b"\n")
        if i < 0:
            return None
        line, self.buf = self.buf[:i], self.buf[i + 1 :]
        return line.rstrip(b"\r")

    def fill(self):
        """Reads what is available (one read); False at EOF."""
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def next(self, timeout=None):
        """The next line; None on timeout; raises EOFError at the end of the stream."""
        deadline = None if timeout is None else time.time() + timeout
        while True:
            line = self.pop()
            if line is not None:
                return line
            if self.eof:
                raise EOFError
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    return None
                if not select_readable(self.fd, left):
                    return None
            self.fill()


def select_readable(fd, timeout):
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        return sel.select(timeout=max(0.0, timeout))
    finally:
        sel.close()


def record(line):
    if len(line) < 2 or line[1:2] != b":":
        raise BadRequest("not a request record")
    return line[:1], base64.b64decode(line[2:], validate=True)


class RequestReader:
    """Assembles one framed request (Q, C, I, D, G records), writing the code and inputs where the
    cold path finds them. A new Q starts over: a request cut short by a broken attach is dropped."""

    def __init__(self):
        self.header, self.code, self.current, self.path = None, None, None, None

    def feed(self, tag, data):
        """True once the request is complete (its G record)."""
        if tag == T_REQUEST:
            self.close()
            self.header = json.loads(data)
            self.path = code_path(language_of(self.header, REQUEST_FIELDS))
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.code = open(self.path, "wb")
        elif tag == T_CODE and self.code is not None:
            self.code.write(data)
        elif tag == T_INPUT and self.code is not None:
            if self.current is not None:
                self.current.close()
            path = safe_path(WORKDIR, json.loads(data)["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.current = open(path, "wb")
        elif tag == T_DATA and self.current is not None:
            self.current.write(data)
        elif tag == T_GO and self.code is not None:
            self.close()
            return True
        else:
            raise BadRequest("unexpected record %r" % tag)
        return False

    def close(self):
        for f in (self.current, self.code):
            if f is not None:
                f.close()
        self.current, self.code = None, None


def apply_limits(q):
    global TIMEOUT, MAX_OUTPUT, MAX_FILES, MAX_PROCS
    TIMEOUT = float(field(q, REQUEST_FIELDS, "timeout_seconds", TIMEOUT))
    MAX_OUTPUT = int(field(q, REQUEST_FIELDS, "max_output_bytes", MAX_OUTPUT))
    MAX_FILES = int(field(q, REQUEST_FIELDS, "max_file_bytes", MAX_FILES))
    MAX_PROCS = int(field(q, REQUEST_FIELDS, "max_processes", MAX_PROCS))


def bad_request(e, **more):
    why = "bad request: %s" % e
    emit(T_STDERR, ("gkexec: %s\n" % why).encode())
    now = time.time()
    emit_end({"exit_code": 125}, now, now, refused=why, **more)


# SPENT marks a Pod whose sandbox has served: a container restarted in it (restartPolicy Always)
# must never serve again, least of all as a fresh interpreter in place of a session's state. It
# lives in /tmp, an emptyDir that outlives the container.
SPENT = os.path.join(os.environ.get("TMPDIR", "/tmp"), ".gkexec-spent")


def serve():
    """The warm sandbox: start the code's interpreter at once, so that it is ready when the request
    comes; then serve one request (Q..G) and stay until deleted, or open a session (S) and serve
    its requests until it ends."""
    if os.path.exists(SPENT):
        spent()
    become_subreaper()
    child, go, status = prestart()
    lines = Lines(0)
    keepalive = None  # set by a runner that holds this sandbox ready: it pings at least that often
    try:
        while True:
            try:
                line = lines.next(timeout=keepalive)
            except EOFError:
                # The attach ended without a request (a pool Pod of an older runner had
                # stdinOnce): nothing ran here, so exiting is safe; the kubelet restarts it, idle.
                kill_group(child.pid)
                return
            if line is None:
                # The runner that holds this sandbox ready is gone: a claimed Pod nobody will use.
                kill_group(child.pid)
                open(SPENT, "w").close()
                leave("the runner holding this sandbox ready stopped pinging it")
            tag, data = record(line)
            if tag == T_PING:
                keepalive = field(ping_request(data), PING_FIELDS, "keepalive_seconds", None) or keepalive
                emit(T_PING, b"")
                OUT.flush()
            elif tag == T_SESSION:
                open(SPENT, "w").close()
                serve_session(child, go, status, lines, json.loads(data))
            else:
                req = RequestReader()
                if req.feed(tag, data):
                    break
                while not req.feed(*record(lines.next())):
                    pass
                break
    except (BadRequest, ValueError, KeyError, OSError, EOFError) as e:
        kill_group(child.pid)
        bad_request(e)
        linger()
    open(SPENT, "w").close()
    # The request is all here: say so, in the log too. A runner whose attach broke before this
    # record (and whose Pod runs on) knows from the log that nothing ran, and runs it elsewhere.
    emit_json(T_BEGIN, {"execution_id": str(field(req.header, REQUEST_FIELDS, "execution_id", ""))})
    OUT.flush()
    try:
        lang = language_of(req.header, REQUEST_FIELDS)
    except BadRequest as e:
        kill_group(child.pid)
        bad_request(e)
        linger()
    apply_limits(req.header)
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    started = time.time()
    if lang == "python":
        run_once(go, req.path)
    else:
        go.close()  # the Python interpreter started ahead is not needed: it exits
        child.wait()
        child = spawn(LANGUAGES[lang]["run"] + [req.path])
    run(child, started)
    linger()


def spent():
    """A restarted container of a Pod that served: answer pings so, and never serve."""
    lines = Lines(0)
    while True:
        try:
            line = lines.next()
        except EOFError:
            linger(forever=True)
        if line[:2] == T_PING + b":":
            emit_json(T_PING, {"spent": True})
            OUT.flush()


def ping_request(data):
    """A runner's ping: its JSON object (PING_FIELDS), or {} when it says nothing."""
    try:
        req = json.loads(data) if data else {}
    except ValueError:
        return {}
    return req if isinstance(req, dict) else {}


def leave(why):
    """Ends this container, saying why in its termination message (the kubelet reports it in the
    Pod's status). In a pool Pod it is restarted, finds SPENT and never serves: the restart is what
    tells any runner, and gc, that the Pod is garbage."""
    try:
        with open("/dev/termination-log", "w") as f:
            f.write("gkexec: " + why)
    except OSError:
        pass
    os._exit(0)


def become_subreaper():
    """Orphans of the code's processes (a double fork, a daemon) become this process's children
    rather than init's, so that a timeout, or the end of a one-shot run, finds and stops them
    (kill_others). In a container this process is init already; elsewhere (tests) it asks the
    kernel."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def descendants(root):
    """The processes below root, by their parent links in /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def kill_others(keep):
    """Kills every process the code started, whatever its session or process group, but keep
    (the session's interpreter, whose state the session is)."""
    for pid in descendants(os.getpid()):
        if pid == keep:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        try:
            os.waitpid(pid, os.WNOHANG)  # an orphan that became this process's child
        except ChildProcessError:
            pass


# A session: one interpreter, many executions. The runner opens it with an S record (JSON: id,
# idle_timeout_seconds, max_lifetime_seconds, max_processes, exit_when_over) and sends requests as
# in one-shot mode; each runs in the same interpreter, so variables, imports and files persist. The
# runner may attach and detach any number of times (the Pod's stdin is not stdinOnce). Per request
# the entrypoint writes:
#
#   B  begin (JSON: execution_id), as soon as the request's header is read: what follows, up to X,
#      belongs to that request, a request it refuses included (X with "refused")
#   O, E, F, D as in one-shot mode; F/D only for output files created or changed by this request
#   X  the end record, with "session_over": why the session ended ("" while it goes on)
#
# It answers P at any time with JSON {"session", "running" (the execution running, or ""),
# "idle_seconds" (since the last one ended)}: the sandbox, not a timestamp of some runner's, says
# whether a runner that holds the session's lease is using it. A P with "replay": an execution ID
# writes that execution's records again first (the one running, or the last), for a runner whose
# attach broke mid-execution. While a request runs, a K record interrupts it (KeyboardInterrupt).
# Its own timeout interrupts it too: every other process the code started is killed, the
# interpreter gets SIGINT, again after 1 s, and SIGKILL 2 s later, which ends the session. The
# session also ends, inside the sandbox whatever the runner does, after idle_timeout_seconds
# without a request and after max_lifetime_seconds in all: the code's processes are killed and the
# entrypoint exits — a Job's Pod completes; a pool Pod's container is restarted and finds SPENT.
def serve_session(child, go, status, lines, hello):
    global RECORD, LAST
    sid = str(field(hello, HELLO_FIELDS, "id", ""))
    idle = float(field(hello, HELLO_FIELDS, "idle_timeout_seconds", 600))
    born = time.time()
    end_of_life = born + float(field(hello, HELLO_FIELDS, "max_lifetime_seconds", 3600))
    max_procs = int(field(hello, HELLO_FIELDS, "max_processes", 0))
    try:
        lang = language_of(hello, HELLO_FIELDS)
    except BadRequest as e:
        # Nothing opened: say why, and go (SPENT is written; the runner deletes the sandbox).
        kill_group(child.pid)
        emit_json(T_SESSION, {"session": sid, "refused": str(e)})
        OUT.flush()
        if field(hello, HELLO_FIELDS, "exit_when_over", False):
            sys.exit(0)
        linger()
    if lang == "python":
        go.write((json.dumps({"session": True, "max_processes": max_procs}) + "\n").encode())
        go.flush()
    else:
        # The Python interpreter started ahead is not this session's: its language's takes its place.
        go.close()
        child.wait()
        global MAX_PROCS
        MAX_PROCS = max_procs
        child, go, status = start_interpreter(SESSION_STUBS[lang])
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    emit_json(T_SESSION, {"session": sid})
    OUT.flush()
    state = {"sid": sid, "last": time.time()}
    pending, over = [], ""
    while not over:
        now = time.time()
        if now >= end_of_life:
            over = "max lifetime reached"
            break
        if now >= state["last"] + idle:
            over = "idle timeout reached"
            break
        if pending:
            line = pending.pop(0)
        else:
            try:
                line = lines.next(timeout=min(state["last"] + idle, end_of_life) - now)
            except EOFError:
                over = "stdin closed"
                break
            if line is None:
                continue
        try:
            tag, data = record(line)
            q = json.loads(data) if tag == T_REQUEST else {}
            if not isinstance(q, dict):
                raise ValueError("the request header is not a JSON object")
            eid = str(field(q, REQUEST_FIELDS, "execution_id", ""))
        except (BadRequest, ValueError):
            continue  # not a request's header: nothing to frame an answer in
        if tag == T_PING:
            answer_ping(state, data)
            continue
        if tag != T_REQUEST:
            continue  # K with nothing running, or the rest of a request cut short by a broken attach
        RECORD = (eid, [])
        emit_json(T_BEGIN, {"execution_id": RECORD[0]})
        OUT.flush()
        req, last_tag = RequestReader(), tag
        try:
            if field(q, REQUEST_FIELDS, "language", "") and language_of(q, REQUEST_FIELDS) != lang:
                raise BadRequest("this is a %s session; its requests are in %s" % (lang, lang))
            done = req.feed(tag, data)
            while not done:
                nxt = pending.pop(0) if pending else lines.next()
                last_tag, data = record(nxt)
                done = req.feed(last_tag, data)
        except EOFError:
            over = "stdin closed"
            bad_request("stdin closed in the middle of the request", session_over=over)
        except (BadRequest, ValueError, KeyError, OSError) as e:
            req.close()
            if last_tag != T_GO:
                skip_request(lines, pending, state)
            bad_request(e, session_over="")
        else:
            over = run_in_session(state, child, go, status, lines, req.header, req.path, pending)
        LAST, RECORD = RECORD, None
        state["last"] = time.time()
    kill_group(child.pid)
    kill_others(None)
    if field(hello, HELLO_FIELDS, "exit_when_over", False):
        sys.exit(0)
    leave("the session ended: " + over)


def answer_ping(state, data):
    """Answers a ping in a session, after the records it asks to replay. The answer is not one of
    an execution's records, and never recorded."""
    replay = field(ping_request(data), PING_FIELDS, "replay", "")
    for kept in (RECORD, LAST):
        if replay and kept is not None and kept[0] == replay:
            OUT.write(b"".join(kept[1]))
            break
    running = RECORD[0] if RECORD is not None else ""
    idle = 0.0 if running else time.time() - state["last"]
    answer = {"session": state["sid"], "running": running, "idle_seconds": round(idle, 3)}
    OUT.write(T_PING + b":" + base64.b64encode(json.dumps(answer, separators=(",", ":")).encode()) + b"\n")
    OUT.flush()


def skip_request(lines, pending, state):
    """Reads the rest of a refused request, up to its G, so that its records are not taken for new
    requests; a request sent early after it is kept. The runner writes a request at once, so its
    lines are there or on their way."""
    while True:
        try:
            line = pending.pop(0) if pending else lines.next(timeout=10)
        except EOFError:
            return
        if line is None or line[:2] == T_GO + b":":
            return
        if line[:2] == T_REQUEST + b":":
            pending.insert(0, line)
            return
        if line[:2] == T_PING + b":":
            answer_ping(state, line[2:] and base64.b64decode(line[2:]))


def run_in_session(state, child, go, status, lines, q, path, pending):
    """Runs one request (its code at path) in the session's interpreter; returns why the session
    ended, or ""."""
    timeout = float(field(q, REQUEST_FIELDS, "timeout_seconds", TIMEOUT))
    max_output = int(field(q, REQUEST_FIELDS, "max_output_bytes", MAX_OUTPUT))
    max_files = int(field(q, REQUEST_FIELDS, "max_file_bytes", MAX_FILES))
    before = output_snapshot()
    started = time.time()
    go.write((json.dumps({"code": path, "output": OUTPUT_DIR}) + "\n").encode())
    go.flush()
    out = Forwarder(child, max_output)
    fds = tuple(out.tags) + (status.fileno(), lines.fileno())
    sel = watch(fds)
    kick, interrupts, timed_out, over, answer = started + timeout, 0, False, "", None
    try:
        while answer is None and not over:
            now = time.time()
            if now >= kick:
                if interrupts < 2:
                    timed_out = timed_out or interrupts == 0 and now >= started + timeout
                    if interrupts == 0:
                        kill_others(child.pid)  # the code's children, daemons and all: stop
                    interrupt(child.pid)
                    interrupts += 1
                    kick = now + (1.0 if interrupts == 1 else 2.0)
                else:
                    kill_group(child.pid)
                    over = "the code could not be interrupted; the interpreter was killed"
                    break
            # Lines read with the request (one read takes what is there) come first.
            while True:
                line = lines.pop()
                if line is None:
                    break
                if line[:2] == T_PING + b":":
                    try:
                        answer_ping(state, base64.b64decode(line[2:]))
                    except ValueError:
                        pass
                elif line[:2] == T_INTERRUPT + b":":
                    kick = min(kick, time.time())  # the caller gave up: interrupt now
                else:
                    pending.append(line)  # the next request, sent early
            if now >= kick:
                continue
            for key, _ in sel.select(timeout=max(0.0, min(kick - now, 0.25))):
                fd = key.fd
                if fd == lines.fileno():
                    if not lines.fill():
                        sel.unregister(fd)  # no more input: the session ends after this request
                    continue
                if fd == status.fileno():
                    if not status.fill():
                        sel.unregister(fd)
                    line = status.pop()
                    if line is not None:
                        answer = json.loads(line)
                    continue
                if out.read(fd) == b"":
                    sel.unregister(fd)
            OUT.flush()
            if answer is None and child.poll() is not None:
                code = child.returncode
                over = "the interpreter exited (%s)" % (
                    "exit code %d" % code if code >= 0 else "signal %d" % -code)
    finally:
        sel.close()
        for fd in fds:
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass
    if interrupts and not over:
        # The code started a process between the first sweep and the interrupt reaching it (a
        # loaded machine lets a whole Popen through): now that the interpreter is back, no longer.
        kill_others(child.pid)
    # What the code wrote before it answered is in the pipes: read it all.
    out.drain()
    finished = time.time()
    files_truncated = emit_files(max_files, before)
    if answer is None:
        answer = exit_status(reap(child))
    emit_end(answer, started, finished, timed_out, out, files_truncated, session_over=over)
    return over


def interrupt(pid):
    try:
        os.kill(pid, signal.SIGINT)
    except (ProcessLookupError, PermissionError):
        pass


def output_snapshot():
    """Size and modification time of every output file, to return only what a request changed."""
    seen = {}
    for root, _, files in os.walk(OUTPUT_DIR):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            seen[path] = (st.st_size, st.st_mtime_ns)
    return seen


# STUB is the code's interpreter in a warm sandbox, started before the request: it waits for the
# go message on a pipe, then runs main.py as `python3 -u main.py` would (as __main__, with
# sys.argv and sys.path[0] set, tracebacks without its own frames). In a session it runs one
# main.py per go message in the same globals, and answers each on the status pipe.
STUB = r"""
import json, os, resource, signal, sys, traceback, warnings
_go = os.fdopen(int(sys.argv[1]), "rb")
# Figures: matplotlib draws without a display, and plt.show() leaves its figures open (Agg cannot
# show them; its warning would only say so) for _figures to return.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message=r"(?s).*non-interactive, and thus cannot be shown")
_saved = set()
def _figures(go, sys=sys, os=os, _saved=_saved):
    # Every matplotlib figure the code left open comes back as output/figure-<n>.png, and is
    # closed. A file of that name the code wrote itself is kept: the figure takes another name.
    # (Its names are bound here: a one-shot run clears this module's globals, as __main__'s.)
    plt = sys.modules.get("matplotlib.pyplot")
    out = go.get("output")
    if plt is None or not out:
        return
    try:
        for num in plt.get_fignums():
            fig = plt.figure(num)
            base, n = os.path.join(out, "figure-%s" % num), 1
            path = base + ".png"
            while os.path.exists(path) and path not in _saved:
                n += 1
                path = "%s-%d.png" % (base, n)
            os.makedirs(out, exist_ok=True)
            fig.savefig(path, format="png")
            _saved.add(path)
            plt.close(fig)
    except Exception as e:
        print("gkexec: could not save the open figures: %s" % e, file=sys.stderr)
_status = os.fdopen(int(sys.argv[2]), "wb", buffering=0)
_first = json.loads(_go.readline() or b"null")
if not _first:
    raise SystemExit(0)
def _limit(go):  # limit_child's copy: a string run in the child cannot import the entrypoint
    n = go.get("max_processes", 0)
    if n > 0:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        except (ValueError, OSError):
            pass
def _globals(path):
    g = sys.modules["__main__"].__dict__
    builtins = g["__builtins__"]
    g.clear()
    g.update(__name__="__main__", __file__=path, __builtins__=builtins, __doc__=None,
             __loader__=None, __spec__=None, __package__=None, __cached__=None)
    return g
def _main(go):
    _status.close()
    _go.close()
    _limit(go)
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
    figures = _figures
    try:
        exec(compile(source, path, "exec"), _globals(path))
    finally:
        figures(go)
def _session(go):
    _limit(go)
    running = [False]
    def on_sigint(signum, frame):
        if running[0]:
            raise KeyboardInterrupt
    g = None
    for line in _go:
        req = json.loads(line)
        path = req["code"]
        if g is None:
            # A module of its own: clearing __main__'s dict (as _main does) would clear this loop's.
            import types
            main = types.ModuleType("__main__")
            main.__file__ = path
            sys.modules["__main__"] = main
            g = main.__dict__
            sys.argv[:] = [path]
            sys.path[0] = os.path.dirname(path)
        signal.signal(signal.SIGINT, on_sigint)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        answer = {"exit_code": 0, "signal": 0}
        try:
            with open(path, "rb") as f:
                source = f.read()
            running[0] = True
            try:
                exec(compile(source, path, "exec"), g)
            finally:
                running[0] = False
        except SystemExit as e:
            c = e.code
            if c is None:
                c = 0
            elif not isinstance(c, int):
                print(c, file=sys.stderr)
                c = 1
            answer["exit_code"] = c & 0xFF
        except BaseException as e:
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != path:
                tb = tb.tb_next
            try:
                traceback.print_exception(type(e), e, tb)
            except BaseException:
                pass
            if isinstance(e, KeyboardInterrupt):
                answer = {"exit_code": 130, "signal": 2}
            else:
                answer["exit_code"] = 1
        _figures(req)
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
        usage = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        answer["max_rss_kib"] = max(usage.ru_maxrss, kids.ru_maxrss)
        answer["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu0
        _status.write((json.dumps(answer) + "\n").encode())
if _first.get("session"):
    _session(_first)
else:
    _main(_first)
"""


# A bash session's interpreter: one shell that sources each execution's script, so that its
# variables, functions, working directory and environment persist. `return N` ends an execution
# with status N; `exit` ends the shell, and with it the session. SIGINT ends the script running.
BASH_STUB = r"""
__gkexec_go=$1 __gkexec_status=$2
trap 'return 130 2>/dev/null' INT
while IFS= read -r -u "$__gkexec_go" __gkexec_line; do
  __gkexec_path=${__gkexec_line#*'"code": "'}
  __gkexec_path=${__gkexec_path%%'"'*}
  source "$__gkexec_path"
  printf '{"exit_code": %d}\n' "$?" >&"$__gkexec_status"
done
"""

# A Node.js session's interpreter: one V8 context in which each execution's script runs, so that
# its variables (let and const included) and functions persist; a promise it evaluates to is
# awaited. process.exit(N) ends an execution with status N; SIGINT interrupts the script running.
NODE_STUB = r"""
const fs = require('fs'), vm = require('vm'), readline = require('readline');
const [goFd, stFd] = process.argv.slice(-2).map(Number);
class Exit { constructor(code) { this.code = code; } }
const proc = Object.create(process, { exit: { value: (code) => { throw new Exit(code === undefined ? 0 : code); } } });
const ctx = vm.createContext({ console, process: proc, require, Buffer, URL, TextEncoder, TextDecoder,
  setTimeout, setInterval, setImmediate, clearTimeout, clearInterval, clearImmediate, queueMicrotask });
const rl = readline.createInterface({ input: fs.createReadStream(null, { fd: goFd }) });
rl.on('line', async (line) => {
  rl.pause();
  const req = JSON.parse(line);
  const cpu0 = process.cpuUsage();
  let code = 0, signal = 0;
  try {
    const result = vm.runInContext(fs.readFileSync(req.code, 'utf8'), ctx, { filename: req.code, breakOnSigint: true });
    if (result && typeof result.then === 'function') await result;
  } catch (e) {
    if (e instanceof Exit) code = e.code & 0xff;
    else if (e && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') { code = 130; signal = 2; console.error('KeyboardInterrupt'); }
    else {
      const stack = (e && e.stack) ? e.stack.split('\n') : [String(e)];
      const cut = stack.findIndex((l) => l.includes('at Script.runInContext'));
      console.error((cut > 0 ? stack.slice(0, cut) : stack).join('\n'));
      code = 1;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  fs.writeSync(stFd, JSON.stringify({ exit_code: code, signal, max_rss_kib: process.resourceUsage().maxRSS,
    cpu_seconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
  rl.resume();
});
"""

SESSION_STUBS = {
    "bash": ["bash", "--noprofile", "--norc", "-c", BASH_STUB, "gkexec-session"],
    "javascript": ["node", "-e", NODE_STUB],
}


def prestart():
    """Starts the Python interpreter a warm sandbox's request is likely for, ahead of it."""
    return start_interpreter([sys.executable, "-u", "-c", STUB])


def start_interpreter(argv):
    """Starts argv with its go and status pipes' fds as its last two arguments."""
    r, w = os.pipe()
    sr, sw = os.pipe()
    child = spawn(argv + [str(r), str(sw)], pass_fds=(r, sw))
    os.close(r)
    os.close(sw)
    return child, os.fdopen(w, "wb"), Lines(sr)


# LINGER bounds how long a used warm sandbox waits for its runner to delete its Pod.
LINGER = env_int("GKEXEC_LINGER_SECONDS", 60)


def linger(forever=False):
    """A used warm sandbox must never serve again: close its streams (which ends the runner's
    attach cleanly) and wait for the delete; if none comes, the runner is gone: leave (the
    restarted container finds SPENT), unless this is that restarted container already."""
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
    if not forever:
        time.sleep(LINGER)
        open(SPENT, "w").close()
        leave("served; its runner did not delete it within %d s" % LINGER)
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
    become_subreaper()
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    try:
        copy_inputs()
        lang = language_of({"language": LANGUAGE}, REQUEST_FIELDS)
    except (OSError, BadRequest) as e:  # no room in the workspace, a path through a file: it cannot run
        bad_request(e)
        return
    started = time.time()
    if lang == "python":
        # The stub a warm sandbox runs, so that Python code behaves the same cold (figures too).
        child, go, _ = prestart()
        run_once(go, CODE)
    else:
        child = spawn(LANGUAGES[lang]["run"] + [CODE])
    run(child, started)


def run_once(go, path):
    """Tells the stub to run the code at path once, as main.py, and exit."""
    go.write((json.dumps({"code": path, "max_processes": MAX_PROCS, "output": OUTPUT_DIR}) + "\n").encode())
    go.close()


def run(child, started):
    out = Forwarder(child, MAX_OUTPUT)
    sel = watch(out.tags)
    deadline = started + TIMEOUT
    drain_until = None  # set once the child is gone: grandchildren may hold the pipes open
    timed_out = False
    while sel.get_map():
        now = time.time()
        if not timed_out and now >= deadline:
            timed_out = True
            kill_group(child.pid)
            kill_others(child.pid)  # what it started in a session or group of its own, too
            drain_until = now + 1.0
        if drain_until is None and child.poll() is not None:
            # The code is over, and so is whatever it left running (a daemon it started).
            kill_group(child.pid)
            kill_others(child.pid)  # (the child itself is reap()'s: its exit status is the result)
            drain_until = now + 1.0
        if drain_until is not None and now >= drain_until:
            break
        wait = min(deadline, drain_until or deadline) - now
        for key, _ in sel.select(timeout=max(0.0, min(wait, 0.25))):
            if out.read(key.fd) == b"":
                sel.unregister(key.fd)
        OUT.flush()

    # No out.drain() as in a session: this loop read on for 1 s after the child was gone, and a
    # grandchild that still holds the pipes might never stop writing.
    code = reap(child)
    finished = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer = dict(exit_status(code), max_rss_kib=usage.ru_maxrss, cpu_seconds=usage.ru_utime + usage.ru_stime)
    emit_end(answer, started, finished, timed_out, out, emit_files())


def emit_files(budget=None, unchanged=None):
    """Sends every regular file under OUTPUT_DIR, in path order, until budget (MAX_FILES) bytes are
    spent; in a session, only those whose size or modification time differs from unchanged."""
    budget = MAX_FILES if budget is None else budget
    truncated = False
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
        if unchanged is not None:
            st = os.lstat(path)
            if unchanged.get(path) == (st.st_size, st.st_mtime_ns):
                continue
        size = os.path.getsize(path)
        take = min(size, budget)
        rel = os.path.relpath(path, OUTPUT_DIR)
        emit_json(T_FILE, {"path": rel, "size": size, "truncated": take < size})
        truncated = truncated or take < size
        with open(path, "rb") as f:
            left = take
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                emit(T_DATA, data)
        budget -= take
    return truncated


if __name__ == "__main__":
    if sys.argv[1:] == ["--wire"]:
        print(json.dumps(wire_table()))
    elif REQUEST == "stdin":
        serve()
    else:
        run_cold()
