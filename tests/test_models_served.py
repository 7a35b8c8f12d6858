#!/usr/bin/python3
"""The served side of the model conformance test (tests/test_models.c has the trainer side): for
every model kind `gnnrec train --help` lists, train it on a small log whose test file has a user
and an item that the training file lacks (with a small knowledge graph for a kind that needs one,
and attribute and friend files for one that uses them, as its --help says), publish, serve, and
check that
  - the server's top-K for every trained user equals `gnnrec recommend` for that version (same
    items in the same order: one kernel offline and online);
  - the user present only in the test file gets 404 from the server and is absent from
    `gnnrec recommend` (exit 1, "unknown user"), and the test-only item is never recommended;
  - `gnnrec models --json` counts only trained users and items;
  - POST /v1/score, in both forms, gives the inner products of the stored vectors, and for a
    user's top-K items exactly the scores the top-K answer carries;
  - GET /v1/items/{item}/similar is the exact cosine ranking, without the item itself;
  - POST /v1/recommend folds a new user in for a kind that can, with the top-K of
    `gnnrec recommend --items` for that version (one fold-in offline and online; that the
    fold-in vector is the kind's rule is tests/test_foldin.c's check, and for graphsage, trained
    once per aggregator, tests/test_sage_fold.c's), and is 422 for one that cannot;
  - GET /v1/users/{user}/recommendations/{item}/explain gives kgat's paths, every hop a pair of
    the log or a triple of the graph file, and is 422 for every other kind;
  - a kind trained on the knowledge graph alone (transe) serves its entities as items: similar
    items, and 404 for users.
Every answer these checks get is validated against proto/openapi.yaml (status and body, with
serverlib's validator). A new model kind gets these checks by being registered. Also: a schema-1
store, written before named tensors, is upgraded by the server and served with the answers of the
build that wrote it.

Run: GNNREC_BIN=build/gnnrec /usr/bin/python3 tests/test_models_served.py
"""
import json
import os
import random
import re
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

BIN = sl.BIN
SPEC = sl.OpenAPI()
TOL = 1e-5


def kinds():
    """{kind: the side-input flags its --help says it needs ("needs: --kg ...", "" for none)}."""
    out = subprocess.run([BIN, "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    section = out.split("\nmodels:\n", 1)[1]
    found = {}
    for kind in (line.split()[0] for line in section.splitlines() if line.strip()):
        help_ = subprocess.run([BIN, "train", "--model", kind, "--help"], capture_output=True,
                               text=True, check=True).stdout
        needs = re.search(r"^needs:(.*)$", help_, re.M)
        found[kind] = needs.group(1) if needs else ""
    return found


def uses_side(kind):
    """Whether `gnnrec train --model KIND --help` says the kind uses side files when given."""
    out = subprocess.run([BIN, "train", "--model", kind, "--help"], capture_output=True,
                         text=True, check=True).stdout
    return re.search(r"^uses when given:", out, re.M) is not None


def run(*args, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300 * sl.SLOW)
    if check and p.returncode != 0:
        raise AssertionError(f"gnnrec {' '.join(args)}: exit {p.returncode}: {p.stderr[-2000:]}")
    return p


class Conformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = sl.TempDir("gnnrec-models-")
        cls.db = cls.tmp.join("store.sqlite")
        rng = random.Random(3)
        cls.users = [f"u{u}" for u in range(60)]
        with open(cls.tmp.join("train.csv"), "w") as f:
            for u in cls.users:
                for i in rng.sample(range(40), 8):
                    f.write(f"{u},i{i}\n")
        with open(cls.tmp.join("test.csv"), "w") as f:
            f.write("u1,i_new\nu_new,i3\nu2,i5\n")
        # a knowledge graph over the items: a genre and a label each, genres grouped in pairs
        with open(cls.tmp.join("kg.tsv"), "w") as f:
            for i in range(40):
                f.write(f"i{i}\tgenre\tg{i % 7}\ni{i}\tlabel\tl{rng.randrange(5)}\n")
            for g in range(7):
                f.write(f"g{g}\tnear\tg{(g + 1) % 7}\n")
        # attributes and friends, for a kind that uses them
        with open(cls.tmp.join("user_attrs.csv"), "w") as f:
            for u in range(60):
                f.write(f"u{u},age,{u % 4}\nu{u},city,c{rng.randrange(3)}\n")
        with open(cls.tmp.join("item_attrs.csv"), "w") as f:
            for i in range(40):
                f.write(f"i{i},genre,g{i % 7}\n")
        with open(cls.tmp.join("friends.csv"), "w") as f:
            for u in range(60):
                f.write(f"u{u},u{(u * 7 + 3) % 60}\n")
        needs = kinds()
        # the recommenders; a kind trained on the knowledge graph alone has no users
        cls.kinds = [k for k, n in needs.items() if "no interaction log" not in n]
        cls.kg_only = [k for k, n in needs.items() if "no interaction log" in n]
        assert "lightgcn" in cls.kinds and "mf" in cls.kinds, cls.kinds
        assert "transe" in cls.kg_only, cls.kg_only
        for kind in cls.kinds:
            side = ["--kg", cls.tmp.join("kg.tsv")] if "--kg" in needs[kind] else []
            if uses_side(kind):
                side += ["--user-attrs", cls.tmp.join("user_attrs.csv"), "--item-attrs",
                         cls.tmp.join("item_attrs.csv"), "--social", cls.tmp.join("friends.csv")]
            run("train", "--model", kind, "--train", cls.tmp.join("train.csv"), "--test",
                cls.tmp.join("test.csv"), *side, "--dim", "16", "--lr", "0.01", "--epochs", "3",
                "--threads", "1", "--quiet", "--db", cls.db, "--name", kind)
        for kind in cls.kg_only:
            run("train", "--model", kind, "--kg", cls.tmp.join("kg.tsv"), "--dim", "16", "--lr",
                "0.01", "--epochs", "3", "--threads", "1", "--quiet", "--db", cls.db, "--name",
                kind)
        cls.sage = [f"graphsage-{agg}" for agg in ("mean", "max", "pool", "lstm")]
        for name in cls.sage:
            run("train", "--model", "graphsage", "--aggregator", name.split("-")[1], "--train",
                cls.tmp.join("train.csv"), "--dim", "16", "--lr", "0.01", "--epochs", "3",
                "--threads", "1", "--quiet", "--db", cls.db, "--name", name)
        cls.server = sl.Server(cls.db, cls.tmp.path).start()
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.close()

    def call(self, method, path, **kw):
        """A request to the server whose answer must be what proto/openapi.yaml documents."""
        r = self.client.request(method, path, **kw)
        try:
            SPEC.validate_response(r)
        except AssertionError as e:
            self.fail(f"{method} {path}: {e}")
        return r

    def offline(self, kind, users, k=10):
        """{user: [items]} from `gnnrec recommend`."""
        out = run("recommend", "--db", self.db, "--name", kind, "--k", str(k), *users).stdout
        got = {}
        for line in out.splitlines():
            m = re.match(r"user (\S+) \(\S+ v\d+\):(.*)", line)
            self.assertIsNotNone(m, line)
            got[m.group(1)] = re.findall(r" (\S+?)\([-0-9.e]+\)", m.group(2))
        return got

    def offline_new_user(self, name, items, k=10):
        """[(item, score)] from `gnnrec recommend --items`."""
        out = run("recommend", "--db", self.db, "--name", name, "--k", str(k), "--items",
                  ",".join(items)).stdout
        m = re.match(r"new user \(\S+ v\d+, (\d+) known items\):(.*)", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), [(i, float(x)) for i, x in
                                 re.findall(r" (\S+?)\(([-0-9.e]+)\)", m.group(2))]

    def test_server_equals_recommend(self):
        for kind in self.kinds:
            with self.subTest(kind=kind):
                offline = self.offline(kind, self.users)
                for u in self.users:
                    r = self.call("GET", f"/v1/users/{u}/recommendations?k=10&model={kind}")
                    self.assertEqual(r.status, 200, r.body)
                    online = [e["item"] for e in r.json()["items"]]
                    self.assertEqual(online, offline[u], f"{kind} user {u}")
                    self.assertNotIn("i_new", online)

    def test_test_only_user_is_not_served(self):
        for kind in self.kinds:
            with self.subTest(kind=kind):
                r = self.call("GET", f"/v1/users/u_new/recommendations?model={kind}")
                self.assertEqual(r.status, 404, r.body)
                self.assertIn("u_new", r.json()["error"]["message"])
                r = self.call("GET", f"/v1/items/i_new/similar?model={kind}")
                self.assertEqual(r.status, 404, r.body)
                p = run("recommend", "--db", self.db, "--name", kind, "u_new", "u1", check=False)
                self.assertEqual(p.returncode, 1)
                self.assertIn("unknown user 'u_new'", p.stderr)
                self.assertNotIn("user u_new", p.stdout)
                self.assertIn("user u1", p.stdout)

    def test_fold_in_or_422(self):
        """POST /v1/recommend: a kind whose version lists fold-in answers with a top-K that
        excludes the given items; any other answers 422 naming its kind."""
        listed = {m["name"]: m for m in self.call("GET", "/v1/models").json()["models"]}
        for kind in self.kinds:
            with self.subTest(kind=kind):
                items = ["i1", "i2", "i_new", "i2"]
                r = self.call("POST", f"/v1/recommend?model={kind}",
                              json_body={"items": items, "k": 10})
                if "fold-in" in listed[kind]["abilities"]:
                    self.assertEqual(r.status, 200, r.body)
                    out = r.json()
                    self.assertEqual(out["known_items"], 2)
                    got = [e["item"] for e in out["items"]]
                    self.assertEqual(len(got), 10)
                    self.assertFalse({"i1", "i2", "i_new"} & set(got))
                    scores = [e["score"] for e in out["items"]]
                    self.assertEqual(scores, sorted(scores, reverse=True))
                    self.assertEqual(self.offline_new_user(kind, items)[1],
                                     [(e["item"], round(e["score"], 3)) for e in out["items"]])
                else:
                    self.assertEqual(r.status, 422, r.body)
                    self.assertIn(f"(kind {kind}) cannot fold in new users",
                                  r.json()["error"]["message"])
        for kind in ("lightgcn", "gcn", "ngcf", "gat", "graphsage"):
            self.assertIn("fold-in", listed[kind]["abilities"], kind)
        self.assertNotIn("fold-in", listed["mf"]["abilities"])
        p = run("recommend", "--db", self.db, "--name", "mf", "--items", "i1", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("(kind mf) cannot fold in new users", p.stderr)

    def test_graphsage_fold_in_every_aggregator(self):
        """Each aggregator's served fold-in equals `gnnrec recommend --items`, for item sets of
        1 to 20 items, in any order and with repeats and unknown ids (the server sorts them)."""
        rng = random.Random(5)
        for name in self.sage:
            with self.subTest(model=name):
                listed = self.client.get("/v1/models").json()["models"]
                self.assertIn("fold-in", [m for m in listed if m["name"] == name][0]["abilities"])
                for _ in range(8):
                    items = [f"i{i}" for i in rng.sample(range(40), rng.randint(1, 20))]
                    items += [items[0], "i_unknown"]
                    rng.shuffle(items)
                    r = self.client.post(f"/v1/recommend?model={name}",
                                         json_body={"items": items, "k": 10})
                    self.assertEqual(r.status, 200, r.body)
                    out = r.json()
                    known, offline = self.offline_new_user(name, items)
                    self.assertEqual(out["known_items"], known)
                    self.assertEqual(offline,
                                     [(e["item"], round(e["score"], 3)) for e in out["items"]])

    def test_score(self):
        """POST /v1/score {"user", "items"}: each item's inner product with the user's stored
        vector, and for the user's top-K items the very scores the top-K answer gave (one kernel);
        {"pairs"}: each pair's inner product, no "user" in the answer."""
        rng = random.Random(5)
        for kind in self.kinds:
            with self.subTest(kind=kind):
                m = sl.StoredModel(self.db, kind)
                for u in rng.sample(self.users, 4):
                    r = self.call("GET", f"/v1/users/{u}/recommendations?k=10&model={kind}")
                    self.assertEqual(r.status, 200, r.body)
                    top = r.json()["items"]
                    items = [e["item"] for e in top] + m.seen(u)[:3]  # seen: not in the top-K
                    r = self.call("POST", f"/v1/score?model={kind}",
                                  json_body={"user": u, "items": items})
                    self.assertEqual(r.status, 200, r.body)
                    out = r.json()
                    self.assertEqual((out["model"], out["version"], out["user"]),
                                     (kind, m.version, u))
                    self.assertEqual(len(out["scores"]), len(items))
                    self.assertEqual(out["scores"][:len(top)], [e["score"] for e in top],
                                     f"{kind} {u}: /v1/score and the top-K disagree")
                    for it, got in zip(items, out["scores"]):
                        self.assertTrue(sl.close_enough(got, m.score(u, it), TOL),
                                        f"{kind} ({u}, {it}): {got}, stored {m.score(u, it)}")
                pairs = [[rng.choice(self.users), f"i{rng.randrange(40)}"] for _ in range(12)]
                r = self.call("POST", f"/v1/score?model={kind}", json_body={"pairs": pairs})
                self.assertEqual(r.status, 200, r.body)
                out = r.json()
                self.assertNotIn("user", out)
                self.assertEqual(len(out["scores"]), len(pairs))
                for (u, it), got in zip(pairs, out["scores"]):
                    self.assertTrue(sl.close_enough(got, m.score(u, it), TOL),
                                    f"{kind} ({u}, {it}): {got}, stored {m.score(u, it)}")

    def test_similar(self):
        """GET /v1/items/{item}/similar: k distinct items, best first, never the item itself, the
        exact cosine ranking of the stored item vectors."""
        for kind in self.kinds:
            with self.subTest(kind=kind):
                m = sl.StoredModel(self.db, kind)
                for item in ("i0", "i3", "i17"):
                    r = self.call("GET", f"/v1/items/{item}/similar?k=10&model={kind}")
                    self.assertEqual(r.status, 200, r.body)
                    out = r.json()
                    self.assertEqual((out["model"], out["version"], out["item"]),
                                     (kind, m.version, item))
                    got = [e["item"] for e in out["items"]]
                    self.assertEqual(len(got), 10)
                    self.assertEqual(len(set(got)), 10, got)
                    self.assertNotIn(item, got)
                    scores = [e["score"] for e in out["items"]]
                    self.assertEqual(scores, sorted(scores, reverse=True))
                    self.assertTrue(all(-1 - TOL <= x <= 1 + TOL for x in scores), scores)
                    top, allowed = m.similar(item, 10)
                    problems = sl.ranking_problems(out["items"], top, allowed, TOL)
                    self.assertFalse(problems, f"{kind} {item}: " + "; ".join(problems))

    def check_paths(self, out, user, item, triples, pairs):
        """Each path of an explanation runs from user to item over edges of the input files:
        (user, item) pairs of the log, (head, relation, tail) triples of the graph, "~r" a
        triple walked backwards; weights in (0, 1], strongest first."""
        weights = [p["weight"] for p in out["paths"]]
        self.assertEqual(weights, sorted(weights, reverse=True))
        for p in out["paths"]:
            nodes, rels = p["nodes"], p["relations"]
            self.assertTrue(0 < p["weight"] <= 1, p)
            self.assertEqual(len(rels), len(nodes) - 1, p)
            self.assertEqual(nodes[0], {"type": "user", "id": user})
            self.assertEqual(nodes[-1], {"type": "item", "id": item})
            for a, r, b in zip(nodes, rels, nodes[1:]):
                a, b = a["id"], b["id"]
                if r == "interact":
                    self.assertIn((a, b), pairs, p)
                elif r == "interacted_by":
                    self.assertIn((b, a), pairs, p)
                elif r.startswith("~"):
                    self.assertIn((b, r[1:], a), triples, p)
                else:
                    self.assertIn((a, r, b), triples, p)

    def test_explain(self):
        """GET .../explain: kgat's paths exist in the input files, its seen item has the one-hop
        path; every other kind answers 422; bad k 400, unknown user 404."""
        with open(self.tmp.join("kg.tsv")) as f:
            triples = {tuple(line.split()) for line in f}
        with open(self.tmp.join("train.csv")) as f:
            pairs = {tuple(line.strip().split(",")) for line in f}
        self.assertIn("kgat", self.kinds)
        m = sl.StoredModel(self.db, "kgat")
        explained = 0
        for u in self.users[:12]:
            r = self.call("GET", f"/v1/users/{u}/recommendations?k=3&model=kgat")
            for item in [e["item"] for e in r.json()["items"]] + m.seen(u)[:1]:
                r = self.call("GET", f"/v1/users/{u}/recommendations/{item}/explain?model=kgat&k=4")
                self.assertEqual(r.status, 200, r.body)
                out = r.json()
                self.assertEqual((out["user"], out["item"]), (u, item))
                self.assertLessEqual(len(out["paths"]), 4)
                self.check_paths(out, u, item, triples, pairs)
                explained += len(out["paths"]) > 0
                if item in m.seen(u):
                    self.assertIn([u, item], [[n["id"] for n in p["nodes"]] for p in out["paths"]])
        self.assertGreater(explained, 30)
        self.assertEqual(self.call("GET", "/v1/users/u1/recommendations/i1/explain?model=kgat&k=0")
                         .status, 400)
        self.assertEqual(self.call("GET", "/v1/users/nobody/recommendations/i1/explain?model=kgat")
                         .status, 404)
        for kind in self.kinds:
            if kind != "kgat":
                r = self.call("GET", f"/v1/users/u1/recommendations/i1/explain?model={kind}")
                self.assertEqual(r.status, 422, f"{kind}: {r.body}")

    def test_kg_only_kinds(self):
        """A kind trained on the knowledge graph alone serves its entities as items: similar
        items by the exact cosine ranking, no user (404), no fold-in (422)."""
        for kind in self.kg_only:
            with self.subTest(kind=kind):
                m = sl.StoredModel(self.db, kind)
                self.assertEqual(len(m.users), 0)
                self.assertEqual(len(m.items), 40 + 7 + 5)  # items, genres, labels
                for item in ("i0", "g3"):
                    r = self.call("GET", f"/v1/items/{item}/similar?k=10&model={kind}")
                    self.assertEqual(r.status, 200, r.body)
                    top, allowed = m.similar(item, 10)
                    problems = sl.ranking_problems(r.json()["items"], top, allowed, TOL)
                    self.assertFalse(problems, f"{kind} {item}: " + "; ".join(problems))
                r = self.call("GET", f"/v1/users/u1/recommendations?model={kind}")
                self.assertEqual(r.status, 404, r.body)
                r = self.call("POST", f"/v1/recommend?model={kind}", json_body={"items": ["i1"]})
                self.assertEqual(r.status, 422, r.body)

    def test_models_counts_trained_only(self):
        listed = json.loads(run("models", "--db", self.db, "--json").stdout)
        rows = listed["models"] if isinstance(listed, dict) else listed
        for kind in self.kinds:
            with self.subTest(kind=kind):
                row = [v for v in rows if v["name"] == kind][-1]
                self.assertEqual(row["kind"], kind)
                self.assertEqual(row["users"], 60)
                self.assertEqual(row["items"], 40)


class SchemaOneStore(unittest.TestCase):
    """A store written by schema-1 gnnrec (tests/cases/store/schema1) is upgraded by the server's
    read-only open and served with the answers that build gave."""

    def test_serves_after_upgrade(self):
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases", "store",
                               "schema1")
        tmp = sl.TempDir("gnnrec-schema1-")
        try:
            db = tmp.join("store.sqlite")
            with open(os.path.join(fixture, "store.sqlite"), "rb") as src, open(db, "wb") as dst:
                dst.write(src.read())
            expected = {}
            for line in open(os.path.join(fixture, "recommend.expected")):
                m = re.match(r"user (\S+) \(legacy v2\):(.*)", line)
                expected[m.group(1)] = re.findall(r" (\S+?)\([-0-9.e]+\)", m.group(2))
            server = sl.Server(db, tmp.path).start()
            try:
                c = server.client()
                for user, items in expected.items():
                    r = c.get(f"/v1/users/{user}/recommendations?k=5")
                    self.assertEqual(r.status, 200, r.body)
                    self.assertEqual(r.json()["version"], 2)
                    self.assertEqual([e["item"] for e in r.json()["items"]], items, user)
                # served, but without fold-in: that version has no lgn.item_layers
                r = c.post("/v1/recommend", json_body={"items": ["i1"]})
                self.assertEqual(r.status, 422, r.body)
                self.assertIn("retrain it with this build", r.json()["error"]["message"])
                c.close()
            finally:
                server.stop()
        finally:
            tmp.close()


if __name__ == "__main__":
    sl.require_serve()
    unittest.main(verbosity=2)
