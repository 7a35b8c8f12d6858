#!/usr/bin/python3
"""No acknowledged event is ever lost: `gnnrec serve` under sustained intake is killed with
SIGKILL, again and again, on the same store.

Each round starts the server on the store the previous round's server was killed on, checks the
log (below), then runs several client threads posting batches of 1..40 events as fast as they are
answered (unique item ids; weights and times of every form: none, unix seconds, fractional
seconds, RFC 3339 strings), recording each request answered 200 with its sequence numbers. At a
random moment the server is killed with SIGKILL, mid-intake. After the restart, every event
acknowledged before the kill must be in the log at the sequence numbers it was given, with its
exact user, item, weight and ts (an absent ts: a time between the send and the answer); every
request, acknowledged or not, is in the log whole or not at all; no event is there twice; and
sequence numbers are never reused across restarts.

Run: GNNREC_BIN=build/gnnrec /usr/bin/python3 tests/test_intake_kill.py
Exit 77 (skipped) when the binary has no `serve` command.
"""
import calendar
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

ROUNDS = 8
POSTERS = 4
MAX_BATCH = 40


def make_event(rng, user, item):
    """An event and the (weight, ts) the log must hold for it (ts None: the commit's time)."""
    e = {"user": user, "item": item}
    weight = ts = None
    if rng.random() < 0.7:
        weight = e["weight"] = rng.choice([rng.uniform(-5, 5), float(rng.randint(0, 9))])
    form = rng.randrange(4)
    sec = rng.randint(0, 2_000_000_000)
    if form == 1:
        ts = float(e.setdefault("ts", sec))
    elif form == 2:
        e["ts"] = sec + rng.randrange(1000) / 8
        ts = e["ts"]
    elif form == 3:
        frac = rng.choice(["", ".5", ".125"])
        e["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + frac + "Z"
        ts = calendar.timegm(time.gmtime(sec)) + (float(frac) if frac else 0.0)
    return e, weight, ts


class Round:
    """One server's life: posters until the kill."""

    def __init__(self, db, tmp, n, seed):
        self.n = n
        self.rng = random.Random(seed)
        self.srv = sl.Server(db, tmp, name=f"kill{n}").start(wait_ready=False)
        self.sent = []   # (events, [(weight, ts)], t_send): every request sent
        self.acked = []  # (first_seq, events, expected, t_send, t_ack)
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def poster(self, t):
        rng = random.Random(self.rng.random())
        c = sl.Client(self.srv.port, timeout=30)
        k = 0
        try:
            while not self.stop.is_set():
                pairs = [make_event(rng, f"k{t}", f"r{self.n}-t{t}-{k}-{j}")
                         for j in range(rng.randint(1, MAX_BATCH))]
                events = [p[0] for p in pairs]
                expected = [p[1:] for p in pairs]
                k += 1
                t_send = time.time()
                with self.lock:
                    self.sent.append((events, expected, t_send))
                try:
                    r = c.post("/v1/events", json_body=events if len(events) > 1 else events[0])
                except Exception:  # noqa: BLE001 (the kill)
                    if not self.stop.is_set():
                        raise
                    return
                if r.status != 200:
                    self.errors.append(repr(r))
                    return
                a = r.json()
                n = len(events)
                if a["accepted"] != n or a["last_seq"] - a["first_seq"] + 1 != n:
                    self.errors.append(f"bad answer {a} to {len(events)} events")
                with self.lock:
                    self.acked.append((a["first_seq"], events, expected, t_send, time.time()))
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            self.errors.append(f"poster {t}: {e!r}")
        finally:
            c.close()

    def run(self, seconds):
        threads = [threading.Thread(target=self.poster, args=(t,)) for t in range(POSTERS)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        self.stop.set()
        self.srv.proc.kill()  # SIGKILL, mid-intake
        self.srv.proc.wait(10)
        for t in threads:
            t.join(30 * sl.SLOW)
        self.srv.kill()
        assert not any(t.is_alive() for t in threads), "posters hung after the kill"
        assert not self.errors, self.errors[:5]


def check_log(db, rounds):
    """Problems with the log against every round's requests (empty when it is right)."""
    rows = sl.events_log(db)
    by_seq = {r[0]: r[1:] for r in rows}
    by_item = {}
    problems = []
    for seq, user, item, weight, ts in rows:
        if item in by_item:
            problems.append(f"item {item} logged twice (seq {by_item[item]} and {seq})")
        by_item[item] = seq
    for rd in rounds:
        for first, events, expected, t_send, t_ack in rd.acked:
            for j, (e, (weight, ts)) in enumerate(zip(events, expected)):
                got = by_seq.get(first + j)
                if got is None:
                    problems.append(f"round {rd.n}: acknowledged event {e['item']} (seq "
                                    f"{first + j}) is not in the log")
                    continue
                want_ts = ts if ts is not None else got[3]
                if got != (e["user"], e["item"], weight, want_ts):
                    problems.append(f"round {rd.n}: seq {first + j} holds {got}, sent {e}")
                if ts is None and not (t_send - 1 <= got[3] <= t_ack + 1):
                    problems.append(f"round {rd.n}: seq {first + j} ts {got[3]} is not the "
                                    f"commit's time ({t_send:.3f}..{t_ack:.3f})")
        for events, _, _ in rd.sent:  # all or nothing, acknowledged or not
            present = sum(e["item"] in by_item for e in events)
            if present not in (0, len(events)):
                problems.append(f"round {rd.n}: {present} of a request's {len(events)} events "
                                f"are in the log")
        if len(problems) > 10:
            break
    return problems, len(rows)


def main():
    sl.require_serve()
    t0 = time.monotonic()
    tmp = sl.TempDir(prefix="gnnrec-kill-")
    db = tmp.join("store.sqlite")
    rng = random.Random(20261202)
    rounds = []
    ok = False
    try:
        for n in range(ROUNDS + 1):
            rd = Round(db, tmp.path, n, rng.random())
            if rounds:  # the restart: everything acknowledged before the kill is there
                problems, n_rows = check_log(db, rounds)
                if problems:
                    sl.log("FAIL after restart " + str(n) + ":\n  " + "\n  ".join(problems))
                    rd.srv.kill()
                    return 1
                last = rounds[-1]
                sl.log(f"  round {last.n}: {len(last.acked)} requests acknowledged "
                       f"({sum(len(a[1]) for a in last.acked)} events), "
                       f"{len(last.sent) - len(last.acked)} unanswered at the kill; "
                       f"log {n_rows} events")
            if n == ROUNDS:  # the last restart is only checked
                c = rd.srv.client()
                try:
                    r = c.post("/v1/events", json_body={"user": "end", "item": "end"})
                    assert r.status == 200, repr(r)
                    prev = max((a[0] + len(a[1]) - 1 for x in rounds for a in x.acked),
                               default=0)
                    assert r.json()["first_seq"] > prev, (r.json(), prev)
                finally:
                    c.close()
                rc = rd.srv.stop()
                assert rc == 0, f"exit {rc} after SIGTERM"
                break
            rd.run(rng.uniform(0.6, 1.4))
            if not rd.acked:
                sl.log(f"FAIL: round {n}: no request was acknowledged before the kill; "
                       f"{rd.srv.stderr()[-2000:]}")
                return 1
            if rounds:  # sequence numbers are never reused after a kill
                prev = max(a[0] + len(a[1]) - 1 for x in rounds for a in x.acked)
                first = min(a[0] for a in rd.acked)
                if first <= prev:
                    sl.log(f"FAIL: round {n} reused sequence number {first} (<= {prev})")
                    return 1
            rounds.append(rd)
        ok = True
    finally:
        for rd in rounds:
            rd.srv.kill()
        if ok:
            tmp.close()
        else:
            sl.log(f"keeping {tmp.path}")
    acked = sum(len(a[1]) for rd in rounds for a in rd.acked)
    sl.log(f"test_intake_kill.py: {ROUNDS} SIGKILLs, {acked} acknowledged events all in the log, "
           f"{time.monotonic() - t0:.1f} s{f' ({sl.SANITIZER} build)' if sl.SANITIZED else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
