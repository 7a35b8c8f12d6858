"""Helpers shared by the gnnrec server tests (tests/test_server.py, tests/test_reload.py,
tests/test_events.py, tests/test_intake_kill.py, ...).

- Server: starts `gnnrec serve` on a free port, waits for "listening on HOST:PORT" on stderr and
  for /readyz 200, stops it with a signal and returns its exit code.
- Client: a small keep-alive HTTP client on http.client that counts the connections it opens.
- OpenAPI: loads proto/openapi.yaml, resolves its $refs against the document and validates a
  (path, method, status, body) against the documented response with jsonschema (2020-12); a
  status the operation does not document is a failure.
- parse_metrics: a strict reader of the Prometheus text format (0.0.4).
- train / StoredModel / publish_copy: publish models with `gnnrec train`, read a version straight
  from the SQLite store (sqlite3 + numpy, chunks concatenated in order) and compute the exact
  answers by brute force, and write versions by SQL (copies, or deliberately damaged ones);
  events_log reads the interaction log.

Environment: GNNREC_BIN (the gnnrec binary), GNNREC_SOURCE_DIR (the repository).
Only the standard library, numpy, PyYAML and jsonschema (Debian packages) are used.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import jsonschema
import numpy as np
import yaml

SOURCE_DIR = os.environ.get("GNNREC_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GNNREC_BIN") or os.path.join(SOURCE_DIR, "build", "gnnrec")
SPEC_PATH = os.path.join(SOURCE_DIR, "proto", "openapi.yaml")
SKIP = 77  # ctest SKIP_RETURN_CODE

ERROR_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type",
               422: "unprocessable_entity", 500: "internal", 501: "not_implemented",
               503: "unavailable"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def require_serve():
    """Exits with 77 (skipped) when the binary has no `serve` command; fails when it is missing."""
    if not os.access(BIN, os.X_OK):
        log(f"FAIL: GNNREC_BIN={BIN} is not an executable")
        sys.exit(1)
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0 and "unknown command" in (p.stdout + p.stderr):
        log(f"SKIP: {BIN} has no 'serve' command")
        sys.exit(SKIP)


def _sanitizer():
    """The sanitizer the binary was built with: "AddressSanitizer", "ThreadSanitizer" or None."""
    try:
        with open(BIN, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"__asan_init" in data:
        return "AddressSanitizer"
    if b"__tsan_init" in data:
        return "ThreadSanitizer"
    return None


SANITIZER = _sanitizer()
SANITIZED = SANITIZER is not None
# Waits that are not part of the contract (startup, training, draining) stretch under a sanitizer.
SLOW = 3.0 if SANITIZED else 1.0


class TempDir:
    """A temporary directory removed at close() unless GNNREC_KEEP_TMP is set."""

    def __init__(self, prefix="gnnrec-srv-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def close(self):
        if os.environ.get("GNNREC_KEEP_TMP"):
            log(f"keeping {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# Training and the store


def train(db, name, seed=None, dim=16, epochs=2, lr=0.01, threads=1, extra=(), timeout=None):
    """Publishes a new version of `name` trained on the synthetic data (users u0..u1999, items
    i0..i1499); returns its version. lr 0.01 rather than the default 1e-3 spreads the scores of
    a 2-epoch model apart (ties within 1e-5 become rare, so rankings are compared strictly).
    One thread by default: OpenMP threads that spin-wait slow down badly when the machine is
    busy (ctest -j, the server under load), and these models train in well under a second."""
    cmd = [BIN, "train", "--synthetic", "--epochs", str(epochs), "--threads", str(threads),
           "--quiet", "--dim", str(dim), "--lr", str(lr), "--db", db, "--name", name]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or 120 * SLOW)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr[-2000:]}")
    m = re.search(r"published (\S+) version (\d+)", p.stdout + p.stderr)
    if not m:
        raise RuntimeError(f"train printed no 'published NAME version N': {p.stdout!r}")
    return int(m.group(2))


def _connect(db):
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 30000")
    return con


def _blob(con, model_id, key):
    rows = con.execute("SELECT chunk, data FROM blobs WHERE model_id = ? AND key = ? "
                       "ORDER BY chunk", (model_id, key)).fetchall()
    if not rows:
        raise KeyError(f"model id {model_id} has no blob {key}")
    if [r[0] for r in rows] != list(range(len(rows))):
        raise ValueError(f"blob {key} chunks are {[r[0] for r in rows]}")
    return b"".join(bytes(r[1]) for r in rows)


def _ids(blob, n):
    ids = blob.split(b"\0")
    if ids[-1] != b"" or len(ids) != n + 1:
        raise ValueError(f"id map holds {len(ids) - 1} ids, expected {n}")
    return [i.decode() for i in ids[:-1]]


class StoredModel:
    """One ready version read straight from the store, and the exact answers computed from it."""

    def __init__(self, db, name, version=None):
        con = _connect(db)
        try:
            con.execute("BEGIN")
            q = ("SELECT id, version, kind, created, n_users, n_items, dim, params, metrics, bytes "
                 "FROM models WHERE name = ? AND status = 'ready'")
            if version is None:
                row = con.execute(q + " ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            else:
                row = con.execute(q + " AND version = ?", (name, version)).fetchone()
            if row is None:
                raise KeyError(f"{db}: no ready version {version} of {name}")
            (self.id, self.version, self.kind, self.created, nu, ni, dim, params, metrics,
             self.bytes) = row
            self.name = name
            self.n_users, self.n_items, self.dim = nu, ni, dim
            self.params = json.loads(params)
            self.metrics = json.loads(metrics)
            self.users = _ids(_blob(con, self.id, "user_ids"), nu)
            self.items = _ids(_blob(con, self.id, "item_ids"), ni)
            self.user_vecs = np.frombuffer(_blob(con, self.id, "user_vecs"), "<f4").reshape(nu, dim)
            self.item_vecs = np.frombuffer(_blob(con, self.id, "item_vecs"), "<f4").reshape(ni, dim)
            self.seen_ptr = np.frombuffer(_blob(con, self.id, "seen_ptr"), "<i8")
            self.seen_idx = np.frombuffer(_blob(con, self.id, "seen_idx"), "<i4")
            self.tensors = {}
            for tname, dtype, shape in con.execute(
                    "SELECT name, dtype, shape FROM tensors WHERE model_id = ? AND name IN "
                    "('lgn.item_layers', 'param.user_emb')", (self.id,)):
                assert dtype == "f32", (tname, dtype)
                self.tensors[tname] = np.frombuffer(_blob(con, self.id, tname),
                                                    "<f4").reshape(json.loads(shape))
            con.execute("COMMIT")
        finally:
            con.close()
        assert self.seen_ptr.shape == (nu + 1,) and self.seen_idx.shape == (self.seen_ptr[-1],)
        self.user_index = {u: i for i, u in enumerate(self.users)}
        self.item_index = {it: i for i, it in enumerate(self.items)}
        norms = np.linalg.norm(self.item_vecs.astype(np.float64), axis=1)
        self._unit = self.item_vecs.astype(np.float64) / np.where(norms > 0, norms, 1)[:, None]

    def vector_bytes(self):
        return self.user_vecs.nbytes + self.item_vecs.nbytes

    def seen(self, user):
        u = self.user_index[user]
        return [self.items[i] for i in self.seen_idx[self.seen_ptr[u]:self.seen_ptr[u + 1]]]

    def score(self, user, item):
        return float(np.dot(self.user_vecs[self.user_index[user]].astype(np.float64),
                            self.item_vecs[self.item_index[item]].astype(np.float64)))

    def user_scores(self, user):
        """Scores of every item for user (float64 of the float32 vectors)."""
        return self.item_vecs.astype(np.float64) @ self.user_vecs[self.user_index[user]].astype(
            np.float64)

    def cosines(self, item):
        return self._unit @ self._unit[self.item_index[item]]

    def _top(self, scores, allowed, k):
        idx = np.flatnonzero(allowed)
        order = idx[np.argsort(-scores[idx], kind="stable")][:k]
        return [(self.items[i], float(scores[i])) for i in order]

    def recommend(self, user, k=20, exclude_seen=True, exclude=(), candidates=None):
        """The exact answer: [(item, score)] best first, and every allowed item's score."""
        scores = self.user_scores(user)
        if candidates is None:
            allowed = np.ones(self.n_items, bool)
        else:
            allowed = np.zeros(self.n_items, bool)
            allowed[[self.item_index[c] for c in candidates]] = True
        if exclude_seen:
            u = self.user_index[user]
            allowed[self.seen_idx[self.seen_ptr[u]:self.seen_ptr[u + 1]]] = False
        for e in exclude:
            if e in self.item_index:
                allowed[self.item_index[e]] = False
        return self._top(scores, allowed, k), {self.items[i]: float(scores[i])
                                                for i in np.flatnonzero(allowed)}

    def fold_in_vector(self, items):
        """LightGCN's fold-in of a new user who interacted with items (docs/serving.md): one
        propagation step from the published item layers, degrees counting the new edge, layer 0
        of the user zero, the mean over layers 0..L. float64."""
        known = sorted({self.item_index[i] for i in items if i in self.item_index})
        layers = self.tensors["lgn.item_layers"].astype(np.float64)
        n_layers = layers.shape[1] // self.dim
        deg = np.bincount(self.seen_idx, minlength=self.n_items).astype(np.float64) + 1
        w = 1 / np.sqrt(len(known)) / np.sqrt(deg[known])
        q = (w[:, None] * layers[known]).sum(axis=0).reshape(n_layers, self.dim).sum(axis=0)
        return q / (n_layers + 1), known

    def recommend_new(self, items, k=20):
        """The exact fold-in answer: [(item, score)] best first, and every allowed item's score."""
        q, known = self.fold_in_vector(items)
        scores = self.item_vecs.astype(np.float64) @ q
        allowed = np.ones(self.n_items, bool)
        allowed[known] = False
        return self._top(scores, allowed, k), {self.items[i]: float(scores[i])
                                                for i in np.flatnonzero(allowed)}

    def similar(self, item, k=20):
        scores = self.cosines(item)
        allowed = np.ones(self.n_items, bool)
        allowed[self.item_index[item]] = False
        return self._top(scores, allowed, k), {self.items[i]: float(scores[i])
                                                for i in np.flatnonzero(allowed)}


def close_enough(a, b, tol=1e-5):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def ranking_problems(got, expected, allowed_scores, tol=1e-5):
    """Compares a returned ranking [{"item", "score"}] with the exact one [(item, score)].

    The lists must have the same length; each returned item must be allowed, appear once, carry
    its true score (within tol), and its true score must equal the expected score at the same
    rank within tol: two items may only swap places when their scores tie within tol. Returns a
    list of problems (empty when the ranking is right)."""
    problems = []
    if len(got) != len(expected):
        problems.append(f"{len(got)} items, expected {len(expected)}")
    seen = set()
    for rank, entry in enumerate(got):
        item, score = entry.get("item"), entry.get("score")
        if item in seen:
            problems.append(f"rank {rank}: {item} returned twice")
        seen.add(item)
        if item not in allowed_scores:
            problems.append(f"rank {rank}: {item} should not be returned (excluded, seen or "
                            f"unknown)")
            continue
        true = allowed_scores[item]
        if not isinstance(score, (int, float)) or not close_enough(score, true, tol):
            problems.append(f"rank {rank}: {item} score {score}, true score {true:.7g}")
        if rank < len(expected) and not close_enough(true, expected[rank][1], tol):
            problems.append(f"rank {rank}: {item} (true score {true:.7g}) where the exact "
                            f"ranking has {expected[rank][0]} ({expected[rank][1]:.7g})")
        if len(problems) > 8:
            break
    return problems


def publish_copy(db, name, src_version=None, damage=None, kind=None):
    """Copies the rows of a version of `name` (default: the newest), its blobs and its tensor
    manifest, into the next version number,
    'ready', in ONE transaction, so no reader can ever see it half-written. damage=(key, n)
    drops the last n bytes of that blob's last chunk: the version is then visible and ready but
    its blob is shorter than its dimensions imply. kind, when given, replaces the model kind (as
    a newer trainer's kind would look). Returns the new version number."""
    con = _connect(db)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("BEGIN IMMEDIATE")
        try:
            if src_version is None:
                src = con.execute("SELECT id FROM models WHERE name = ? AND status = 'ready' "
                                  "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            else:
                src = con.execute("SELECT id FROM models WHERE name = ? AND version = ?",
                                  (name, src_version)).fetchone()
            if src is None:
                raise KeyError(f"no version to copy of {name}")
            version = con.execute("SELECT MAX(version) + 1 FROM models WHERE name = ?",
                                  (name,)).fetchone()[0]
            cur = con.execute(
                "INSERT INTO models(name, version, kind, created, status, n_users, n_items, dim, "
                "params, metrics, bytes) SELECT name, ?, kind, strftime('%Y-%m-%dT%H:%M:%SZ', "
                "'now'), 'writing', n_users, n_items, dim, params, metrics, bytes FROM models "
                "WHERE id = ?", (version, src[0]))
            new_id = cur.lastrowid
            con.execute("INSERT INTO blobs(model_id, key, chunk, data) SELECT ?, key, chunk, data "
                        "FROM blobs WHERE model_id = ?", (new_id, src[0]))
            con.execute("INSERT INTO tensors(model_id, name, dtype, shape, bytes) SELECT ?, name, "
                        "dtype, shape, bytes FROM tensors WHERE model_id = ?", (new_id, src[0]))
            if damage is not None:
                key, n = damage
                cur = con.execute(
                    "UPDATE blobs SET data = substr(data, 1, length(data) - ?) WHERE model_id = ? "
                    "AND key = ? AND chunk = (SELECT MAX(chunk) FROM blobs WHERE model_id = ? AND "
                    "key = ?)", (n, new_id, key, new_id, key))
                if cur.rowcount != 1:
                    raise KeyError(f"no blob {key} to damage")
            if kind is not None:
                con.execute("UPDATE models SET kind = ? WHERE id = ?", (kind, new_id))
            con.execute("UPDATE models SET status = 'ready' WHERE id = ?", (new_id,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    return version


def events_log(db, after_seq=0):
    """The store's interaction log after sequence number after_seq, straight from SQLite:
    [(seq, user, item, weight or None, ts)] in sequence order."""
    con = _connect(db)
    try:
        return con.execute("SELECT seq, user, item, weight, ts FROM events WHERE seq > ? "
                           "ORDER BY seq", (after_seq,)).fetchall()
    finally:
        con.close()


def make_empty_store(db, name="scratch"):
    """A valid store that lists no model: publish one, then delete it (its blobs cascade)."""
    train(db, name, epochs=1, extra=("--max-batches", "1"))
    con = _connect(db)
    try:
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("DELETE FROM models")
        assert con.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# The server process


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `gnnrec serve` process. stderr is collected (and copied to DIR/NAME.stderr), stdout
    goes to DIR/NAME.stdout. It listens on listen_host (clients connect to 127.0.0.1, which
    reaches 0.0.0.0 too)."""

    def __init__(self, db, tmpdir, *args, name="server", env=None, listen_host="127.0.0.1"):
        self.db, self.tmpdir, self.args, self.name = db, tmpdir, list(args), name
        self.listen_host = listen_host
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.stopping = False
        self.lines = []
        self._listening = threading.Event()
        self._lock = threading.Lock()

    def _read_stderr(self, proc, path):
        with open(path, "a") as copy:
            for raw in proc.stderr:
                line = raw.decode(errors="replace")
                copy.write(line)
                copy.flush()
                with self._lock:
                    self.lines.append(line)
                if "listening on" in line:
                    self._listening.set()

    def stderr(self):
        with self._lock:
            return "".join(self.lines)

    def start(self, wait_ready=True, timeout=None):
        timeout = timeout or 30 * SLOW
        for attempt in range(5):
            port = free_port()
            self.lines, self._listening = [], threading.Event()
            cmd = [BIN, "serve", "--db", self.db, "--listen", f"{self.listen_host}:{port}"] + \
                self.args
            out = open(os.path.join(self.tmpdir, self.name + ".stdout"), "ab")
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, env=self.env)
            out.close()
            self._reader = threading.Thread(
                target=self._read_stderr, daemon=True,
                args=(self.proc, os.path.join(self.tmpdir, self.name + ".stderr")))
            self._reader.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._listening.wait(0.05):
                    break
            if self._listening.is_set():
                break
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"{' '.join(cmd)}: no 'listening on' within {timeout:.0f} s;"
                                     f" stderr: {self.stderr()[-2000:]}")
            self._reader.join(5)
            if "in use" in self.stderr().lower() and attempt < 4:
                continue  # lost the race for the port: try another one
            raise AssertionError(f"{' '.join(cmd)}: exited {self.proc.returncode} before "
                                 f"listening; stderr: {self.stderr()[-2000:]}")
        m = re.search(r"listening on (\S+):(\d+)", self.stderr())
        assert m, f"cannot parse the listening line: {self.stderr()!r}"
        self.port = int(m.group(2))
        assert self.port == port, f"asked for port {port}, listening on {self.port}"
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def client(self, **kw):
        return Client(self.port, server=self, **kw)

    def death(self):
        """None while the process runs; else its exit status and the end of its stderr (where a
        sanitizer report would be)."""
        if self.proc is None or self.proc.poll() is None or self.stopping:
            return None
        self._reader.join(5)
        return f"server {self.name} exited {self.proc.returncode}; stderr: {self.stderr()[-6000:]}"

    def wait_ready(self, timeout=None):
        """Polls /readyz until it answers 200; returns the seconds it took."""
        timeout = timeout or 30 * SLOW
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: "
                                     f"{self.stderr()[-2000:]}")
            c = Client(self.port, timeout=5)
            try:
                last = c.get("/readyz")
                if last.status == 200:
                    return time.monotonic() - t0
            except OSError as e:
                last = e
            finally:
                c.close()
            time.sleep(0.05)
        raise AssertionError(f"/readyz not 200 within {timeout:.0f} s (last: {last}); stderr: "
                             f"{self.stderr()[-2000:]}")

    def send_signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Sends sig (unless a stop signal was sent already: a second one is not a graceful
        stop), waits for the exit and returns the exit code (kills after the timeout and
        raises)."""
        timeout = timeout or 20 * SLOW
        if self.proc.poll() is None and not self.stopping:
            self.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout:.0f} s of signal {sig}; "
                                 f"stderr: {self.stderr()[-2000:]}")
        self._finish()
        return rc

    def _finish(self):
        self._reader.join(5)
        if self.proc.stderr and not self._reader.is_alive():
            self.proc.stderr.close()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self._finish()

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


# ------------------------------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, method, path, status, reason, headers, body, elapsed):
        self.method, self.path, self.status, self.reason = method, path, status, reason
        self.headers, self.body, self.elapsed = headers, body, elapsed
        self._json = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        if self._json is None:
            self._json = json.loads(self.body)
        return self._json

    def __repr__(self):
        body = self.body[:300].decode(errors="replace")
        return f"<{self.method} {self.path} -> {self.status} {body!r}>"


class ServerDied(AssertionError):
    """A request failed because the server process is gone."""


class _CountingConnection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects = getattr(self, "connects", 0) + 1


class Client:
    """Keep-alive HTTP/1.1 client. `connects` counts the TCP connections it opened. When a
    request fails because the server process died, the error says so, with its stderr."""

    def __init__(self, port, host="127.0.0.1", timeout=30, server=None):
        self.conn = _CountingConnection(host, port, timeout=timeout * SLOW)
        self.server = server

    @property
    def connects(self):
        return getattr(self.conn, "connects", 0)

    def request(self, method, path, body=None, headers=None, json_body=None):
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        t0 = time.monotonic()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            time.sleep(0.1)
            death = self.server.death() if self.server else None
            if death:
                raise ServerDied(f"{method} {path}: {e!r}; {death}") from e
            raise
        except BaseException:
            self.conn.close()
            raise
        return Response(method, path, r.status, r.reason, r.headers, data, time.monotonic() - t0)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def close(self):
        self.conn.close()


def send_and_read(port, data, timeout=10, chunk=65536, host="127.0.0.1"):
    """Sends data in chunks on a new connection, stopping early if the server stops reading or
    closes, then reads until the server closes. Returns (bytes read, bytes sent)."""
    sent = 0
    with socket.create_connection((host, port), timeout=timeout * SLOW) as s:
        s.settimeout(2 * SLOW)  # a server that stopped reading makes sendall block
        try:
            while sent < len(data):
                n = s.send(data[sent:sent + chunk])
                sent += n
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, timeout * SLOW), sent


def read_until_close(sock, timeout):
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def split_responses(data):
    """The responses in a byte stream (each with a Content-Length), as parse_raw_response
    tuples; a trailing partial response is dropped."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if not sep or not m or len(rest) < int(m.group(1)):
            break
        n = len(head) + 4 + int(m.group(1))
        out.append(parse_raw_response(data[:n]))
        data = data[n:]
    return out


def parse_raw_response(data):
    """(status, headers dict with lower-case names, body) of the first response in data."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise ValueError(f"not an HTTP response: {data[:200]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = [], body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out.append(rest[:n])
            rest = rest[n + 2:]
        body = b"".join(out)
    return int(m.group(1)), headers, body


# ------------------------------------------------------------------------------------------------
# OpenAPI


def _pointer(*parts):
    esc = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "#/" + "/".join(urllib.parse.quote(e, safe="~") for e in esc)


class OpenAPI:
    """proto/openapi.yaml as a validator of responses (and of the tests' own request bodies)."""

    def __init__(self, path=SPEC_PATH):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.templates = []
        for template in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            self.templates.append((template, re.compile(rx)))
        self._validators = {}

    def match(self, path):
        """The path template a request path (query allowed) falls under, or None."""
        path = urllib.parse.urlsplit(path).path
        for template, rx in self.templates:
            if rx.match(path):
                return template
        return None

    def _deref(self, obj, pointer):
        while "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            pointer = "#/" + "/".join(urllib.parse.quote(p, safe="~")
                                      for p in ref[2:].split("/"))
            obj = self.doc
            for part in ref[2:].split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
        return obj, pointer

    def operations(self, template):
        return {m.upper() for m in self.doc["paths"][template]
                if m in ("get", "put", "post", "delete", "patch", "head", "options")}

    def response(self, template, method, status):
        """(response object, JSON pointer) documented for this status, or raises AssertionError."""
        item = self.doc["paths"][template]
        op = item.get(method.lower())
        if op is None:
            if status != 405:
                raise AssertionError(f"{method} {template} is not an operation of the API and "
                                     f"answered {status}, not 405")
            method = sorted(self.operations(template))[0]  # any operation documents its 405
            op = item[method.lower()]
        responses = op.get("responses", {})
        if str(status) not in responses:
            raise AssertionError(f"{method} {template}: status {status} is not documented "
                                 f"(documented: {', '.join(sorted(responses))})")
        return self._deref(responses[str(status)],
                           _pointer("paths", template, method.lower(), "responses", str(status)))

    def _validator(self, pointer):
        v = self._validators.get(pointer)
        if v is None:
            root = {"$ref": pointer, "paths": self.doc["paths"],
                    "components": self.doc["components"]}
            v = jsonschema.Draft202012Validator(root)
            self._validators[pointer] = v
        return v

    def schema_errors(self, pointer, instance):
        return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                for e in self._validator(pointer).iter_errors(instance)]

    def error_schema_pointer(self):
        return _pointer("components", "schemas", "Error")

    def validate(self, template, method, status, body, content_type="application/json"):
        """Raises AssertionError unless (method, template) documents `status` and the body
        (bytes, str or already-decoded JSON) has the documented media type and schema."""
        resp, pointer = self.response(template, method, status)
        content = resp.get("content")
        where = f"{method} {template} -> {status}"
        if not content:
            return
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in content:
            raise AssertionError(f"{where}: Content-Type {content_type!r}, documented: "
                                 f"{', '.join(content)}")
        if media != "application/json":
            return
        if isinstance(body, (bytes, str)):
            try:
                body = json.loads(body)
            except ValueError as e:
                raise AssertionError(f"{where}: body is not JSON ({e}): {body[:300]!r}")
        ptr = pointer + "/content/" + urllib.parse.quote("application~1json", safe="~") + \
            "/schema"
        errors = self.schema_errors(ptr, body)
        if errors:
            raise AssertionError(f"{where}: body does not match the schema: {'; '.join(errors)}"
                                 f"; body: {json.dumps(body)[:500]}")

    def validate_response(self, r):
        """Validates a Response; an unknown path must answer 404 with an Error body."""
        template = self.match(r.path)
        ctype = r.header("Content-Type")
        if template is None:
            if r.status != 404:
                raise AssertionError(f"{r.method} {r.path} (no such path) answered {r.status}, "
                                     f"not 404")
            if (ctype or "").split(";")[0].strip().lower() != "application/json":
                raise AssertionError(f"{r.method} {r.path} -> 404: Content-Type {ctype!r}")
            errors = self.schema_errors(self.error_schema_pointer(), json.loads(r.body))
            if errors:
                raise AssertionError(f"{r.method} {r.path} -> 404: {'; '.join(errors)}")
            return
        self.validate(template, r.method, r.status, r.body, ctype)

    def request_errors(self, template, method, body):
        """Schema errors of a request body against the documented requestBody (for checking that
        a test's 'valid' request really is valid, and its 'invalid' one really is not)."""
        op = self.doc["paths"][template][method.lower()]
        rb, pointer = self._deref(op["requestBody"],
                                  _pointer("paths", template, method.lower(), "requestBody"))
        ptr = pointer + "/content/" + urllib.parse.quote("application~1json", safe="~") + \
            "/schema"
        return self.schema_errors(ptr, body)


class ContractCase(unittest.TestCase):
    """A test case whose requests go through call(), which validates every response against the
    OpenAPI document (a subclass sets `spec`, the module's loaded OpenAPI)."""

    maxDiff = 4000
    spec = None

    def call(self, client, method, path, **kw):
        r = client.request(method, path, **kw)
        try:
            self.spec.validate_response(r)
        except AssertionError as e:
            self.fail(f"{method} {path}: {e}")
        return r


def error_problems(r, status):
    """Problems with an error response expected to have `status` (beyond the schema)."""
    problems = []
    if r.status != status:
        problems.append(f"status {r.status}, expected {status}")
    try:
        err = r.json().get("error", {})
    except (ValueError, AttributeError):
        return problems + [f"body is not a JSON object: {r.body[:200]!r}"]
    if r.status in ERROR_CODES and err.get("code") != ERROR_CODES[r.status]:
        problems.append(f"error code {err.get('code')!r} for status {r.status}, expected "
                        f"{ERROR_CODES[r.status]!r}")
    if not err.get("message"):
        problems.append("empty error message")
    return problems


# ------------------------------------------------------------------------------------------------
# Prometheus text format

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(" + _NAME + r")(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_metrics(text):
    """Parses the Prometheus text exposition format strictly. Returns (samples, types): samples
    a list of (name, labels dict, float value), types {family: type}. Raises ValueError on a
    malformed line."""
    samples, types = [], {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                if len(parts) != 4 or parts[3].strip() not in (
                        "counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError(f"line {n}: bad TYPE line {line!r}")
                if parts[2] in types:
                    raise ValueError(f"line {n}: second TYPE line for {parts[2]}")
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {n}: not a sample: {line!r}")
        name, labeltext, value = m.groups()
        labels = {}
        if labeltext:
            pos = 0
            while pos < len(labeltext):
                lm = _LABEL.match(labeltext, pos)
                if not lm:
                    raise ValueError(f"line {n}: bad labels {labeltext!r}")
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        try:
            v = float(value)  # accepts +Inf, -Inf, NaN
        except ValueError:
            raise ValueError(f"line {n}: bad value {value!r}")
        samples.append((name, labels, v))
    return samples, types


def histogram_problems(samples, family):
    """Checks every series of a histogram family: cumulative le buckets ending in +Inf, whose
    count equals _count, plus a _sum."""
    problems = []
    series = {}
    for name, labels, v in samples:
        if name == family + "_bucket":
            if "le" not in labels:
                problems.append(f"{name}{labels} has no le label")
                continue
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            series.setdefault(key, {"buckets": []})["buckets"].append((float(labels["le"]), v))
        elif name in (family + "_sum", family + "_count"):
            key = tuple(sorted(labels.items()))
            series.setdefault(key, {"buckets": []})[name[len(family) + 1:]] = v
    if not series:
        return [f"no {family} series"]
    for key, s in series.items():
        b = sorted(s["buckets"])
        if not b or b[-1][0] != float("inf"):
            problems.append(f"{family}{dict(key)}: no +Inf bucket")
            continue
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            problems.append(f"{family}{dict(key)}: buckets not cumulative: {b}")
        if "count" not in s or s["count"] != b[-1][1]:
            problems.append(f"{family}{dict(key)}: _count {s.get('count')} != +Inf bucket "
                            f"{b[-1][1]}")
        if "sum" not in s:
            problems.append(f"{family}{dict(key)}: no _sum")
    return problems


def metric_value(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (None when there is none)."""
    vals = [v for n, lab, v in samples
            if n == name and all(lab.get(k) == x for k, x in labels.items())]
    return sum(vals) if vals else None
