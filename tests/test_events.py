#!/usr/bin/python3
"""POST /v1/events, the server's write side, against its contract (proto/openapi.yaml), and who
may write.

Every response is validated against the OpenAPI document, and the store's `events` table is read
with sqlite3 to check what was (and was not) written: a single event and arrays land with
consecutive sequence numbers and exact user/item/weight/ts (unix seconds or RFC 3339 UTC); a bad
event answers 400 naming its index and writes nothing of its request; unknown fields, bad times,
empty or oversized arrays, 413 and 415. Group commit under concurrent posters while GET
recommendations keep answering 200; backpressure (a full queue answers 503 with Retry-After) and
a failed commit (503, nothing written) by holding the store's write lock from here; SIGTERM with
events queued commits and answers them. Auth: --token-file (401 with WWW-Authenticate without or
with a wrong token, 200 with it, /admin/reload too, reads open), a server on 0.0.0.0 without a
token answering writes 403, --insecure-writes, unreadable or empty token files refused at start.
/metrics intake counters move as they should.

Run: GNNREC_BIN=build/gnnrec /usr/bin/python3 tests/test_events.py [-k PATTERN]
Exit 77 (skipped) when the binary has no `serve` command.
"""
import calendar
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

SPEC = sl.OpenAPI()
MODEL = "demo"
TOKEN = "tok-3f9a1c7e5b2d4806"

state = {}  # module fixture: tmp, db, server (loopback, no token)


def setUpModule():
    tmp = sl.TempDir(prefix="gnnrec-events-")
    state["tmp"] = tmp
    state["db"] = tmp.join("store.sqlite")
    sl.train(state["db"], MODEL, seed=11, epochs=1)
    state["model"] = sl.StoredModel(state["db"], MODEL)
    state["server"] = sl.Server(state["db"], tmp.path, name="main").start()


def tearDownModule():
    srv = state.get("server")
    try:
        if srv is not None and srv.proc is not None and srv.proc.poll() is None:
            rc = srv.stop()
            if rc != 0:
                raise AssertionError(f"main server exit code {rc}; {srv.stderr()[-3000:]}")
    finally:
        if srv is not None:
            srv.kill()
        state["tmp"].close()


def last_seq(db):
    rows = sl.events_log(db)
    return rows[-1][0] if rows else 0


class Case(sl.ContractCase):
    spec = SPEC

    def post_events(self, client, body, token=None, raw=None, headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if raw is not None:
            h.setdefault("Content-Type", "application/json")
            return self.call(client, "POST", "/v1/events", body=raw, headers=h)
        return self.call(client, "POST", "/v1/events", json_body=body, headers=h)

    def expect_error(self, r, status, contains=None):
        problems = sl.error_problems(r, status)
        self.assertFalse(problems, f"{r.method} {r.path}: {'; '.join(problems)}; {r.body[:400]!r}")
        if contains:
            self.assertIn(contains, r.json()["error"]["message"])

    def expect_accepted(self, r, n):
        self.assertEqual(r.status, 200, repr(r))
        a = r.json()
        self.assertEqual(a["accepted"], n)
        self.assertEqual(a["last_seq"] - a["first_seq"] + 1, n)
        return a

    def metrics(self, client):
        r = self.call(client, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        try:
            return sl.parse_metrics(r.body.decode())
        except ValueError as e:
            self.fail(f"/metrics is not Prometheus text: {e}")


class TestIntake(Case):
    def setUp(self):
        self.srv = state["server"]
        self.db = state["db"]
        self.c = self.srv.client()

    def tearDown(self):
        self.c.close()

    def test_single_event(self):
        body = {"user": "eu1", "item": "ei1", "weight": 1.5, "ts": 1700000000}
        self.assertFalse(SPEC.request_errors("/v1/events", "POST", body))
        before = last_seq(self.db)
        a = self.expect_accepted(self.post_events(self.c, body), 1)
        self.assertGreater(a["first_seq"], before)
        self.assertEqual(sl.events_log(self.db, before),
                         [(a["first_seq"], "eu1", "ei1", 1.5, 1700000000.0)])

    def test_array_exact_values(self):
        body = [{"user": "eu2", "item": "ei1", "weight": 0.1, "ts": "2026-12-01T10:00:00Z"},
                {"user": "eu2", "item": "ei2", "ts": 1700000000.25},
                {"user": "eu3", "item": "é/2 x", "weight": -3, "ts": "2024-02-29T23:59:59.5Z"},
                {"user": "eu3", "item": "ei4", "ts": "2026-12-01"},
                {"user": "eu3", "item": "ei5"}]
        self.assertFalse(SPEC.request_errors("/v1/events", "POST", body))
        before = last_seq(self.db)
        t0 = time.time()
        a = self.expect_accepted(self.post_events(self.c, body), 5)
        t1 = time.time()
        rows = sl.events_log(self.db, before)
        self.assertEqual([r[0] for r in rows], list(range(a["first_seq"], a["last_seq"] + 1)))
        dec1 = calendar.timegm((2026, 12, 1, 10, 0, 0))
        leap = calendar.timegm((2024, 2, 29, 23, 59, 59)) + 0.5
        self.assertEqual([r[1:] for r in rows[:4]],
                         [("eu2", "ei1", 0.1, float(dec1)), ("eu2", "ei2", None, 1700000000.25),
                          ("eu3", "é/2 x", -3.0, leap),
                          ("eu3", "ei4", None, float(dec1 - 10 * 3600))])
        # no ts: the time of the commit
        self.assertEqual(rows[4][1:4], ("eu3", "ei5", None))
        self.assertTrue(t0 - 1 <= rows[4][4] <= t1 + 1, (t0, rows[4][4], t1))

    def test_bad_event_names_index_and_writes_nothing(self):
        good = {"user": "bu", "item": "bi"}
        cases = [  # (bad event, part of the message, whether the schema alone rejects it)
            ({"user": "bu"}, "item is missing", True),
            ({"user": "bu", "item": "bi", "extra": 1}, 'unknown field "extra"', True),
            ({"user": 7, "item": "bi"}, "user must be a string", True),
            ({"user": "", "item": "bi"}, "empty user", True),
            ({"user": "u" * 257, "item": "bi"}, "longer than 256", True),
            ({"user": "a\tb", "item": "bi"}, "control character", False),
            ({"user": "bu", "item": "bi", "weight": "2"}, "weight must be a number", True),
            ({"user": "bu", "item": "bi", "weight": None}, "weight must be a number", True),
            ({"user": "bu", "item": "bi", "ts": -1}, "ts -1", True),
            ({"user": "bu", "item": "bi", "ts": 1e15}, "year 9999", True),
            ({"user": "bu", "item": "bi", "ts": True}, "ts must be", True),
            ({"user": "bu", "item": "bi", "ts": "yesterday"}, "RFC 3339", True),
            ({"user": "bu", "item": "bi", "ts": "2026-12-01 10:00:00Z"}, "RFC 3339", True),
            ({"user": "bu", "item": "bi", "ts": "2026-12-01T10:00:00+01:00"}, "RFC 3339", True),
            ({"user": "bu", "item": "bi", "ts": "2026-12-01T10:00:00+00:00"}, "RFC 3339", True),
            ({"user": "bu", "item": "bi", "ts": "2026-12-01T10:00:00"}, "RFC 3339", True),
            ({"user": "bu", "item": "bi", "ts": "2026-02-29T10:00:00Z"}, "RFC 3339", False),
            ({"user": "bu", "item": "bi", "ts": "2026-13-01T10:00:00Z"}, "RFC 3339", False),
            ({"user": "bu", "item": "bi", "ts": "2026-12-01T24:00:00Z"}, "RFC 3339", False),
            ("just a string", "must be an object", True),
            ([good], "must be an object", True),
        ]
        before = last_seq(self.db)
        for i, (bad, text, schema_rejects) in enumerate(cases):
            with self.subTest(case=i, event=str(bad)[:60]):
                at = i % 4
                body = [dict(good, item=f"bi{k}") for k in range(4)]
                body.insert(at, bad)
                if schema_rejects:
                    self.assertTrue(SPEC.request_errors("/v1/events", "POST", body),
                                    "the contract's schema should reject it too")
                r = self.post_events(self.c, body)
                self.expect_error(r, 400, f"events[{at}]: ")
                self.assertIn(text, r.json()["error"]["message"])
        # a single bad object is events[0]
        self.expect_error(self.post_events(self.c, {"user": "bu"}), 400, "events[0]: item")
        self.assertEqual(sl.events_log(self.db, before), [], "a refused request wrote events")

    def test_body_shapes(self):
        before = last_seq(self.db)
        for raw, text in ((b"[]", "1..10000"), (b"{", "malformed JSON"), (b"42", "'{' expected"),
                          (b'"x"', "'{' expected"), (b"", "malformed JSON"),
                          (b'{"user": "a", "user": "b", "item": "i"}', "malformed JSON"),
                          (b'{"user": "a\\u0000b", "item": "i"}', "malformed JSON")):
            with self.subTest(body=raw):
                self.expect_error(self.post_events(self.c, None, raw=raw), 400, text)
        too_many = [{"user": "u", "item": "i"}] * 10001
        self.assertTrue(SPEC.request_errors("/v1/events", "POST", too_many))
        self.expect_error(self.post_events(self.c, too_many), 400, "not 10001")
        self.assertEqual(sl.events_log(self.db, before), [])
        # 10000 is the most, and is one commit
        a = self.expect_accepted(self.post_events(self.c, too_many[:10000]), 10000)
        rows = sl.events_log(self.db, before)
        self.assertEqual(len(rows), 10000)
        self.assertEqual((rows[0][0], rows[-1][0]), (a["first_seq"], a["last_seq"]))

    def test_media_type_and_size(self):
        r = self.call(self.c, "POST", "/v1/events", body=b'{"user": "u", "item": "i"}',
                      headers={"Content-Type": "text/plain"})
        self.expect_error(r, 415)
        head = (b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n")
        body = b"[" + b" " * (1 << 20) + b"]"
        data, _ = sl.send_and_read(self.srv.port, head % len(body) + body)
        status, headers, rbody = sl.parse_raw_response(data)
        self.assertEqual(status, 413, data[:300])
        SPEC.validate("/v1/events", "POST", status, rbody, headers.get("content-type"))
        self.expect_error(self.call(self.c, "GET", "/v1/events"), 405)

    def test_metrics_counters(self):
        samples, types = self.metrics(self.c)
        for family, kind in (("gnnrec_events_accepted_total", "counter"),
                             ("gnnrec_events_rejected_total", "counter"),
                             ("gnnrec_event_commits_total", "counter"),
                             ("gnnrec_event_commit_failures_total", "counter"),
                             ("gnnrec_events_queued", "gauge"),
                             ("gnnrec_model_version_age_seconds", "gauge")):
            self.assertEqual(types.get(family), kind, family)
        v = lambda s, name, **kw: sl.metric_value(s, name, **kw) or 0  # noqa: E731
        self.expect_accepted(self.post_events(self.c, [{"user": "mu", "item": "mi"}] * 2), 2)
        self.expect_accepted(self.post_events(self.c, {"user": "mu", "item": "mi2"}), 1)
        self.expect_error(self.post_events(self.c, [{"user": "mu"}] * 3), 400)
        after, _ = self.metrics(self.c)
        self.assertEqual(v(after, "gnnrec_events_accepted_total") -
                         v(samples, "gnnrec_events_accepted_total"), 3)
        commits = v(after, "gnnrec_event_commits_total") - v(samples, "gnnrec_event_commits_total")
        self.assertIn(commits, (1, 2))
        self.assertEqual(v(after, "gnnrec_events_rejected_total", reason="invalid") -
                         v(samples, "gnnrec_events_rejected_total", reason="invalid"), 3)
        for reason in ("overloaded", "failed", "shutdown"):
            self.assertIsNotNone(sl.metric_value(after, "gnnrec_events_rejected_total",
                                                 reason=reason), reason)
        self.assertEqual(v(after, "gnnrec_events_queued"), 0)
        self.assertEqual(v(after, "gnnrec_http_requests_total", endpoint="events", status="200") -
                         v(samples, "gnnrec_http_requests_total", endpoint="events",
                           status="200"), 2)
        # the version's age: now minus its created time
        created = sl.StoredModel(self.db, MODEL).created
        expect = time.time() - calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
        age = sl.metric_value(after, "gnnrec_model_version_age_seconds", model=MODEL)
        self.assertIsNotNone(age, "no gnnrec_model_version_age_seconds for the model")
        self.assertLess(abs(age - expect), 5, (age, expect))

    def test_concurrent_posting_while_reading(self):
        """Posters on keep-alive connections share commits; recommendations answer 200 all along
        and every acknowledged event is in the log as sent."""
        before = last_seq(self.db)
        samples, _ = self.metrics(self.c)
        acked, failures = {}, []
        stop = threading.Event()
        reads = [0]

        def poster(t):
            c = self.srv.client()
            try:
                for k in range(25):
                    body = [{"user": f"cu{t}", "item": f"c{t}-{k}-{j}", "weight": t + j / 8}
                            for j in range(1 + (k * 7 + t) % 20)]
                    r = self.post_events(c, body)
                    if r.status != 200:
                        failures.append(repr(r))
                        continue
                    acked[r.json()["first_seq"]] = body
            except Exception as e:  # noqa: BLE001 (reported below)
                failures.append(f"poster {t}: {e!r}")
            finally:
                c.close()

        def reader(t):
            c = self.srv.client()
            try:
                while not stop.is_set():
                    users = state["model"].users
                    user = users[(reads[0] * 7 + t) % len(users)]
                    r = self.call(c, "GET", f"/v1/users/{user}/recommendations?k=10")
                    if r.status != 200:
                        failures.append(repr(r))
                    reads[0] += 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"reader {t}: {e!r}")
            finally:
                c.close()

        posters = [threading.Thread(target=poster, args=(t,)) for t in range(6)]
        readers = [threading.Thread(target=reader, args=(t,)) for t in range(2)]
        for t in posters + readers:
            t.start()
        for t in posters:
            t.join(120 * sl.SLOW)
        stop.set()
        for t in readers:
            t.join(30 * sl.SLOW)
        self.assertFalse(any(t.is_alive() for t in posters + readers), "client threads hung")
        self.assertFalse(failures, failures[:5])
        self.assertGreater(reads[0], 10)
        log = {row[0]: row[1:] for row in sl.events_log(self.db, before)}
        n = 0
        for first, body in acked.items():
            for j, e in enumerate(body):
                self.assertEqual(log.get(first + j, ())[:3], (e["user"], e["item"], e["weight"]))
                n += 1
        self.assertEqual(n, len(log), "the log holds events nobody was acknowledged for")
        after, _ = self.metrics(self.c)
        commits = (sl.metric_value(after, "gnnrec_event_commits_total") -
                   sl.metric_value(samples, "gnnrec_event_commits_total"))
        sl.log(f"  6 posters x 25 requests ({n} events), {reads[0]} reads: {commits:.0f} commits")
        self.assertLessEqual(commits, 150)


class TestWriterStalls(Case):
    """The writer held up by another connection's write lock on the store (sqlite3 from here)."""

    def setUp(self):
        self.tmp = sl.TempDir(prefix="gnnrec-events-stall-")
        self.db = self.tmp.join("store.sqlite")
        self.srv = sl.Server(self.db, self.tmp.path, "--max-queued-events", "10000",
                             name="stall").start(wait_ready=False)
        self.c = self.srv.client()
        # the first post creates the store; the writer's handle is open from then on
        self.expect_accepted(self.post_events(self.c, {"user": "s", "item": "s"}), 1)

    def tearDown(self):
        self.c.close()
        self.srv.kill()
        self.tmp.close()

    def lock(self):
        con = sl._connect(self.db)
        con.execute("PRAGMA busy_timeout = 0")
        con.execute("BEGIN IMMEDIATE")
        return con

    @staticmethod
    def unlock(con):
        con.execute("ROLLBACK")
        con.close()

    def post_async(self, body, out):
        def run():
            c = self.srv.client()
            try:
                out.append((body, self.post_events(c, body)))
            finally:
                c.close()
        t = threading.Thread(target=run)
        t.start()
        return t

    def wait_queued(self, n):
        deadline = time.monotonic() + 10 * sl.SLOW
        while time.monotonic() < deadline:
            samples, _ = self.metrics(self.c)
            if sl.metric_value(samples, "gnnrec_events_queued") == n:
                return samples
            time.sleep(0.02)
        self.fail(f"gnnrec_events_queued never reached {n}")

    def test_full_queue_answers_503_at_once(self):
        con = self.lock()
        out = []
        try:
            t = self.post_async([{"user": "q", "item": f"q{j}"} for j in range(10000)], out)
            self.wait_queued(10000)
            t0 = time.monotonic()
            r = self.post_events(self.c, {"user": "q", "item": "one more"})
            self.assertLess(time.monotonic() - t0, 2 * sl.SLOW, "the 503 waited for the queue")
            self.expect_error(r, 503, "queue is full")
            self.assertEqual(r.header("Retry-After"), "1")
            self.assertEqual(self.call(self.c, "GET", "/healthz").status, 200)
        finally:
            self.unlock(con)
        t.join(30 * sl.SLOW)
        self.assertEqual(len(out), 1)
        self.expect_accepted(out[0][1], 10000)
        self.assertEqual(len(sl.events_log(self.db)), 10001)
        samples, _ = self.metrics(self.c)
        self.assertEqual(sl.metric_value(samples, "gnnrec_events_rejected_total",
                                         reason="overloaded"), 1)

    def test_failed_commit_answers_503_and_writes_nothing(self):
        """Held past the store's busy timeout (5 s), a commit fails: every request of its group
        answers 503 and nothing of them is written; once the lock is gone commits work again."""
        con = self.lock()
        out = []
        try:
            ts = [self.post_async([{"user": "f", "item": f"f{k}-{j}"} for j in range(3)], out)
                  for k in range(3)]
            self.wait_queued(9)
            deadline = time.monotonic() + 30 * sl.SLOW
            while not out and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            self.unlock(con)
        for t in ts:
            t.join(30 * sl.SLOW)
        self.assertEqual(len(out), 3)
        logged = {row[2] for row in sl.events_log(self.db)}
        failed = 0
        for body, r in out:
            items = {e["item"] for e in body}
            if r.status == 503:
                self.expect_error(r, 503, "not logged")
                self.assertFalse(items & logged, "a request answered 503 wrote events")
                failed += len(body)
            else:
                self.expect_accepted(r, 3)
                self.assertLessEqual(items, logged)
        self.assertGreater(failed, 0, "no commit failed while the store was locked")
        samples, _ = self.metrics(self.c)
        self.assertGreaterEqual(sl.metric_value(samples, "gnnrec_event_commit_failures_total"), 1)
        self.assertEqual(sl.metric_value(samples, "gnnrec_events_rejected_total",
                                         reason="failed"), failed)
        self.assertIn("events: commit of", self.srv.stderr())
        self.expect_accepted(self.post_events(self.c, {"user": "f", "item": "after"}), 1)

    def test_sigterm_commits_what_is_queued(self):
        con = self.lock()
        out = []
        try:
            ts = [self.post_async([{"user": "t", "item": f"t{k}-{j}"} for j in range(5)], out)
                  for k in range(4)]
            self.wait_queued(20)
            self.srv.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            self.assertIsNone(self.srv.proc.poll(), "exited with events queued")
        finally:
            self.unlock(con)
        for t in ts:
            t.join(30 * sl.SLOW)
        self.assertEqual(self.srv.stop(), 0)
        self.assertEqual([r.status for _, r in out], [200] * 4)
        self.assertEqual(len(sl.events_log(self.db)), 21)


class TestAuth(Case):
    def start(self, *args, listen_host="127.0.0.1", name="auth"):
        srv = sl.Server(state["db"], state["tmp"].path, *args, listen_host=listen_host,
                        name=name).start()
        self.addCleanup(srv.kill)
        return srv

    def test_token(self):
        path = state["tmp"].join("token")
        with open(path, "w") as f:
            f.write(f"  {TOKEN}\t\nsecond line ignored\n")
        srv = self.start("--token-file", path)
        self.assertIn("need the bearer token", srv.stderr())
        self.assertNotIn(TOKEN, srv.stderr())
        c = srv.client()
        try:
            before = last_seq(state["db"])
            body = {"user": "au", "item": "ai"}
            for token in (None, "", TOKEN[:-1] + "x", TOKEN[:-1], TOKEN + "x", TOKEN.upper(),
                          "x" * 1000):
                with self.subTest(token=token):
                    r = self.post_events(c, body, token=token)
                    self.expect_error(r, 401)
                    self.assertEqual(r.header("WWW-Authenticate"), "Bearer")
            r = self.post_events(c, body, headers={"Authorization": f"Basic {TOKEN}"})
            self.expect_error(r, 401)
            # 401 before the body's type is looked at: no hint to a client without the token
            r = self.call(c, "POST", "/v1/events", body=b"x", headers={"Content-Type": "text/x"})
            self.expect_error(r, 401)
            self.assertEqual(sl.events_log(state["db"], before), [])
            self.expect_accepted(self.post_events(c, body, token=TOKEN), 1)
            self.expect_accepted(self.post_events(
                c, body, headers={"Authorization": f"bearer   {TOKEN}"}), 1)
            # /admin/reload too
            self.expect_error(self.call(c, "POST", "/admin/reload"), 401)
            r = self.call(c, "POST", "/admin/reload",
                          headers={"Authorization": f"Bearer {TOKEN}"})
            self.assertEqual(r.status, 200, repr(r))
            # reads stay open, and a method a write path does not take is 405, not 401
            m = state["model"]
            for path in (f"/v1/users/{m.users[0]}/recommendations?k=3", "/v1/models",
                         "/metrics", "/healthz", f"/v1/items/{m.items[0]}/similar"):
                self.assertEqual(self.call(c, "GET", path).status, 200, path)
            r = self.call(c, "POST", "/v1/score",
                          json_body={"user": m.users[0], "items": [m.items[0]]})
            self.assertEqual(r.status, 200)
            self.expect_error(self.call(c, "GET", "/v1/events"), 405)
            self.assertEqual(c.connects, 1, "refusals closed the keep-alive connection")
        finally:
            c.close()
        self.assertEqual(srv.stop(), 0)

    def test_beyond_loopback_without_token(self):
        srv = self.start(listen_host="0.0.0.0", name="open")
        self.assertIn("writes refused (403)", srv.stderr())
        c = srv.client()
        try:
            before = last_seq(state["db"])
            r = self.post_events(c, {"user": "o", "item": "o"})
            self.expect_error(r, 403, "--token-file")
            self.assertIn("--insecure-writes", r.json()["error"]["message"])
            self.expect_error(self.call(c, "POST", "/admin/reload"), 403)
            user = state["model"].users[0]
            self.assertEqual(self.call(c, "GET", f"/v1/users/{user}/recommendations").status,
                             200)
            self.assertEqual(sl.events_log(state["db"], before), [])
        finally:
            c.close()

    def test_insecure_writes(self):
        srv = self.start("--insecure-writes", listen_host="0.0.0.0", name="insecure")
        self.assertIn("--insecure-writes: whoever reaches", srv.stderr())
        c = srv.client()
        try:
            self.expect_accepted(self.post_events(c, {"user": "i", "item": "i"}), 1)
            self.assertEqual(self.call(c, "POST", "/admin/reload").status, 200)
        finally:
            c.close()

    def test_token_beyond_loopback(self):
        path = state["tmp"].join("token2")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        srv = self.start("--token-file", path, listen_host="0.0.0.0", name="tok0")
        c = srv.client()
        try:
            self.expect_error(self.post_events(c, {"user": "t", "item": "t"}), 401)
            self.expect_accepted(self.post_events(c, {"user": "t", "item": "t"}, token=TOKEN), 1)
        finally:
            c.close()

    def test_bad_token_files_refuse_to_start(self):
        empty = state["tmp"].join("empty-token")
        with open(empty, "w") as f:
            f.write(" \t\n" + TOKEN + "\n")
        for path, text in ((state["tmp"].join("no-such-token"), "No such file"),
                           (empty, "empty"), (state["tmp"].path, "directory")):
            with self.subTest(path=path):
                p = sl.subprocess.run([sl.BIN, "serve", "--db", state["db"], "--listen",
                                       f"127.0.0.1:{sl.free_port()}", "--token-file", path],
                                      capture_output=True, text=True, timeout=30 * sl.SLOW)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(path, p.stderr)
                self.assertIn(text, p.stderr)
                self.assertNotIn("listening on", p.stderr)

    def test_help(self):
        p = sl.subprocess.run([sl.BIN, "serve", "--help"], capture_output=True, text=True,
                              timeout=30)
        for flag in ("--token-file", "--insecure-writes", "--max-queued-events", "/v1/events"):
            self.assertIn(flag, p.stdout)


if __name__ == "__main__":
    sl.require_serve()
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    sl.log(f"test_events.py: {time.monotonic() - t0:.1f} s"
           f"{f' ({sl.SANITIZER} build)' if sl.SANITIZED else ''}")
    sys.exit(0 if prog.result.wasSuccessful() else 1)
