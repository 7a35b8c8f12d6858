"""The retraining loop end to end, as an operator runs it (issue 9's must-shows 1, 2 and 4).

1. A store with v1 of model `main`, trained from its interaction log; a server on it with a
   token. Events are posted to the server: three items a user was being recommended, and six
   interactions of a user the model has never seen (404 before).
2. deploy/gnnrec-retrain.sh runs as a scheduler runs it (a bare environment, settings in its
   config file): warm start, gate, refit, publish. The server switches to v2 by itself, and its
   answers reflect the events: the user's three items are excluded as seen, the new user is
   served, from its community. The script's textfile and log record the run.
3. A deliberately degraded retrain (one cold epoch on the newest events alone) is refused by the
   gate: exit 3, recorded as such, nothing published, v2 still served.
4. Rollback under load: with v3 published and served, client threads request recommendations
   without pause while `gnnrec models rollback` pins v2; every request succeeds, and every one
   sent from 2 s after the rollback on is answered by v2.
"""
import os
import random
import subprocess
import sys
import threading
import time

import serverlib as sl

TOKEN = "loop-test-token-0123456789"
COMMUNITIES, USERS, ITEMS = 5, 300, 200


def write_log(path):
    """300 users in 5 communities, 14 interactions each, 90% within the community (item % 5 ==
    user % 5), timestamped from 1700000000 on."""
    rng = random.Random(11)
    with open(path, "w") as f:
        f.write("user,item,ts\n")
        for u in range(USERS):
            for k in range(14):
                i = (rng.randrange(ITEMS // COMMUNITIES) * COMMUNITIES + u % COMMUNITIES
                     if rng.random() < 0.9 else rng.randrange(ITEMS))
                f.write(f"u{u},i{i},{1700000000 + u * 20 + k}\n")


def fresh_events(users, seed):
    """Two new in-community interactions for each user, dated now: what the gate compares on
    (interactions no published version has trained on)."""
    rng = random.Random(seed)
    return [{"user": f"u{u}", "item": f"i{rng.randrange(ITEMS // COMMUNITIES) * COMMUNITIES + u % COMMUNITIES}"}
            for u in users for _ in range(2)]


def run(*args, check=True, env=None, timeout=300):
    p = subprocess.run(list(args), capture_output=True, text=True, env=env,
                       timeout=timeout * sl.SLOW)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr[-3000:]}")
    return p


def served_version(c):
    r = c.get("/v1/models")
    assert r.status == 200, r.body
    return {m["name"]: m["version"] for m in r.json()["models"]}.get("main")


def wait_version(c, want, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if served_version(c) == want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(f"the server did not switch to v{want} within {timeout} s "
                         f"(serving v{served_version(c)})")


def top(c, user, k):
    r = c.get(f"/v1/users/{user}/recommendations?k={k}")
    assert r.status == 200, (user, r.status, r.body)
    body = r.json()
    return [x["item"] for x in body["items"]], body["version"]


def textfile(path):
    values = {}
    for line in open(path):
        if line.startswith("gnnrec_retrain_"):
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0][len("gnnrec_retrain_"):]] = float(value)
    return values


def main():
    sl.require_serve()
    tmp = sl.TempDir("gnnrec-loop-")
    d = tmp.path
    db, log_csv = os.path.join(d, "store.sqlite"), os.path.join(d, "log.csv")
    write_log(log_csv)
    run(sl.BIN, "import", "--db", db, log_csv)
    run(sl.BIN, "train", "--db", db, "--name", "main", "--from-log", "--split", "time:0.1",
        "--epochs", "60", "--refit-epochs", "5", "--threads", "2", "--quiet")
    with open(os.path.join(d, "token"), "w") as f:
        f.write(TOKEN + "\n")
    server = sl.Server(db, d, "--token-file", os.path.join(d, "token"), "--poll-ms", "200")
    server.start()
    c = server.client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert served_version(c) == 1

        # 1. events: three of u3's recommendations, and a new user of community 2
        before, _ = top(c, "u3", 10)
        clicked = before[:3]
        assert c.get("/v1/users/newbie/recommendations?k=5").status == 404
        newbie_items = [f"i{5 * k + 2}" for k in range(6)]
        events = [{"user": "u3", "item": i} for i in clicked]
        events += [{"user": "newbie", "item": i, "weight": 1} for i in newbie_items]
        events += fresh_events(range(10, 110), 1)
        r = c.post("/v1/events", json_body=events[:1], headers=auth)
        assert r.status == 200, r.body
        r = c.post("/v1/events", json_body=events[1:], headers=auth)
        assert r.status == 200 and r.json()["accepted"] == len(events) - 1, r.body
        assert c.post("/v1/events", json_body=events[:1]).status == 401  # no token: refused

        # 2. the retrain job, as the timer or cron runs it: bare environment, a config file
        conf = os.path.join(d, "retrain.conf")
        with open(conf, "w") as f:
            f.write(f"GNNREC={sl.BIN}\nGNNREC_DB={db}\nGNNREC_MODEL_NAME=main\n"
                    f"GNNREC_SPLIT=time:0.1\nGNNREC_WARM_START=1\nGNNREC_GATE_TOLERANCE=0.05\n"
                    f"GNNREC_REFIT_EPOCHS=5\nGNNREC_TRAIN_ARGS=\"--epochs 10 --threads 2\"\n"
                    f"GNNREC_REPORT_DIR={d}/reports\nGNNREC_RETRAIN_LOG={d}/retrain.log\n"
                    f"GNNREC_LOCK_FILE={d}/retrain.lock\nGNNREC_TEXTFILE_DIR={d}/textfile\n")
        os.makedirs(f"{d}/reports")
        os.makedirs(f"{d}/textfile")
        script = os.path.join(sl.SOURCE_DIR, "deploy", "gnnrec-retrain.sh")
        env = {"PATH": "/usr/bin:/bin", "GNNREC_RETRAIN_CONFIG": conf, "HOME": d}
        p = run("bash", script, check=False, env=env)
        assert p.returncode == 0, f"retrain exit {p.returncode}: {p.stderr[-3000:]}"
        took = wait_version(c, 2, 10 * sl.SLOW)
        sl.log(f"loop: the server switched to v2 {took:.2f} s after the retrain returned")
        after, version = top(c, "u3", 50)
        assert version == 2
        assert not set(clicked) & set(after), (clicked, after)
        got, _ = top(c, "newbie", 10)
        own = sum(int(i[1:]) % COMMUNITIES == 2 for i in got)
        assert not set(newbie_items) & set(got), got
        assert own >= 6, f"newbie's top-10 has {own} items of its community: {got}"
        stats = textfile(f"{d}/textfile/gnnrec_retrain_main.prom")
        assert stats["last_exit_code"] == 0 and stats["published_version"] == 2, stats
        assert stats["last_success_timestamp_seconds"] > 0, stats
        assert os.path.exists(f"{d}/reports/last.html"), os.listdir(f"{d}/reports")
        assert "published main v2" in open(f"{d}/retrain.log").read()

        # 3. a degraded model: one cold epoch on a third of the log; the gate refuses it
        r = c.post("/v1/events", json_body=fresh_events(range(120, 220), 2), headers=auth)
        assert r.status == 200, r.body
        degraded = dict(env, GNNREC_WARM_START="0", GNNREC_SINCE="1700004000",
                        GNNREC_TRAIN_ARGS="--epochs 1 --threads 2")
        p = run("bash", script, check=False, env=degraded)
        assert p.returncode == 3, f"degraded retrain exit {p.returncode}: {p.stderr[-3000:]}"
        assert "refused" in open(f"{d}/retrain.log").read()
        stats = textfile(f"{d}/textfile/gnnrec_retrain_main.prom")
        assert stats["last_exit_code"] == 3 and stats["published_version"] == 2, stats
        listed = run(sl.BIN, "models", "--db", db, "--name", "main").stdout
        assert "\nmain" in listed and " 3 " not in listed.split("main", 1)[1].split("\n")[0]
        time.sleep(0.5)
        assert served_version(c) == 2

        # 4. rollback under load
        run(sl.BIN, "train", "--db", db, "--name", "main", "--from-log", "--epochs", "2",
            "--warm-start", "--threads", "2", "--quiet")
        wait_version(c, 3, 10 * sl.SLOW)
        results, stop = [], threading.Event()

        def hammer(seed):
            cc, rng = server.client(), random.Random(seed)
            while not stop.is_set():
                t = time.monotonic()
                r = cc.get(f"/v1/users/u{rng.randrange(USERS)}/recommendations?k=10")
                results.append((t, r.status, r.json().get("version") if r.status == 200 else None))
            cc.close()

        threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t_rollback = time.monotonic()
        out = run(sl.BIN, "models", "rollback", "--db", db, "main").stdout
        assert "pinned to v2" in out, out
        t_done = time.monotonic()
        time.sleep(2.5 * sl.SLOW)
        stop.set()
        for t in threads:
            t.join()
        failed = [r for r in results if r[1] != 200]
        assert not failed, f"{len(failed)} of {len(results)} requests failed: {failed[:5]}"
        late = [r for r in results if r[0] > t_done + 2 * sl.SLOW and r[2] != 2]
        assert not late, f"{len(late)} requests sent 2 s after the rollback got v3"
        first_v2 = min((r[0] for r in results if r[0] > t_rollback and r[2] == 2), default=None)
        last_v3 = max((r[0] for r in results if r[2] == 3), default=t_rollback)
        assert first_v2 is not None
        sl.log(f"rollback under load: {len(results)} requests, none failed; v2 answered from "
               f"{first_v2 - t_done:+.2f} s after the pin, the last v3 answer was sent at "
               f"{last_v3 - t_done:+.2f} s")
        server.stop()
    finally:
        server.kill()
        tmp.close()
    print("test_loop: ok")


if __name__ == "__main__":
    sys.exit(main())
