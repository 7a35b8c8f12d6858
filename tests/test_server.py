#!/usr/bin/python3
"""End-to-end test of `gnnrec serve` against its contract, proto/openapi.yaml.

Trains a small model into a fresh store, starts the server on a free port and checks every
endpoint, validating EVERY response against the OpenAPI document (status documented for the
operation, media type, schema): recommendations and similar items equal a brute-force numpy
ranking of the stored vectors, scores equal numpy dot products, seen/exclude/candidates/k work,
every error status has a schema-valid error body, /metrics is well-formed Prometheus text. Then
the server's behaviour as a process: no store / empty store (503 until a version is published),
several models, keep-alive, concurrent clients, stalled clients (dropped after --conn-timeout
without blocking anyone), SIGTERM with requests in flight (they complete, exit 0).

Run: GNNREC_BIN=build/gnnrec /usr/bin/python3 tests/test_server.py [-k PATTERN]
Exit 77 (skipped) when the binary has no `serve` command.
"""
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import unittest
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

SPEC = sl.OpenAPI()
MODEL = "demo"
TOL = 1e-5

state = {}  # module fixture: tmp, db, model (StoredModel), server


def recs_path(user, raw_query=None, **params):
    path = f"/v1/users/{urllib.parse.quote(user, safe='')}/recommendations"
    query = raw_query if raw_query is not None else urllib.parse.urlencode(params)
    return path + ("?" + query if query else "")


def explain_path(user, item, **params):
    path = (f"/v1/users/{urllib.parse.quote(user, safe='')}/recommendations/"
            f"{urllib.parse.quote(item, safe='')}/explain")
    query = urllib.parse.urlencode(params)
    return path + ("?" + query if query else "")


def similar_path(item, **params):
    path = f"/v1/items/{urllib.parse.quote(item, safe='')}/similar"
    query = urllib.parse.urlencode(params)
    return path + ("?" + query if query else "")


def setUpModule():
    tmp = sl.TempDir()
    state["tmp"] = tmp
    db = tmp.join("store.sqlite")
    state["db"] = db
    version = sl.train(db, MODEL, seed=7)
    assert version == 1, version
    state["model"] = sl.StoredModel(db, MODEL)
    state["server"] = sl.Server(db, tmp.path, "--threads", "2", name="main").start()


def tearDownModule():
    srv = state.get("server")
    try:
        if srv is not None and srv.proc is not None and srv.proc.poll() is None:
            rc = srv.stop()
            if rc != 0:
                raise AssertionError(f"main server exit code {rc} after SIGTERM; stderr: "
                                     f"{srv.stderr()[-3000:]}")
    finally:
        if srv is not None:
            srv.kill()
        state["tmp"].close()


class ServerCase(sl.ContractCase):
    """Requests through call(), which validates every response against the OpenAPI document."""

    spec = SPEC

    def get(self, client, path, **kw):
        return self.call(client, "GET", path, **kw)

    def post(self, client, path, **kw):
        return self.call(client, "POST", path, **kw)

    def expect(self, r, status):
        self.assertEqual(r.status, status, f"{r.method} {r.path}: {r.status}, expected {status}: "
                                           f"{r.body[:400]!r}")
        return r.json() if status != 200 or r.header("Content-Type", "").startswith(
            "application/json") else r.body

    def expect_error(self, r, status):
        problems = sl.error_problems(r, status)
        self.assertFalse(problems, f"{r.method} {r.path}: {'; '.join(problems)}; body "
                                   f"{r.body[:400]!r}")

    def check_ranking(self, what, got, expected, allowed):
        problems = sl.ranking_problems(got, expected, allowed, TOL)
        self.assertFalse(problems, f"{what}: " + "; ".join(problems))


class TestEndpoints(ServerCase):
    """One server, one model: every endpoint, exact answers, every error."""

    @classmethod
    def setUpClass(cls):
        cls.m = state["model"]
        cls.srv = state["server"]
        cls.rng = random.Random(1234)
        cls.users = ["u0", "u1", "u7", "u123", "u1999"] + cls.rng.sample(cls.m.users, 5)

    def setUp(self):
        self.c = self.srv.client()

    def tearDown(self):
        self.c.close()

    def recs(self, user, status=200, raw_query=None, **params):
        r = self.get(self.c, recs_path(user, raw_query, **params))
        body = self.expect(r, status)
        if status == 200:
            self.assertEqual((body["model"], body["version"], body["user"]),
                             (MODEL, self.m.version, user), r.path)
        return body

    # -- health

    def test_healthz(self):
        self.assertIsInstance(self.expect(self.get(self.c, "/healthz"), 200)["status"], str)

    def test_readyz(self):
        self.assertIsInstance(self.expect(self.get(self.c, "/readyz"), 200)["status"], str)

    # -- recommendations

    def test_recommendations_equal_brute_force(self):
        for user in self.users:
            for k in (None, 1, 7, 100):
                params = {} if k is None else {"k": k}
                body = self.recs(user, **params)
                top, allowed = self.m.recommend(user, 20 if k is None else k)
                self.check_ranking(f"{user} k={k}", body["items"], top, allowed)

    def test_recommendations_k_1000(self):
        body = self.recs("u42", k=1000)
        top, allowed = self.m.recommend("u42", 1000)
        self.assertEqual(len(top), 1000)  # 1500 items, far fewer seen
        self.check_ranking("u42 k=1000", body["items"], top, allowed)

    def test_seen_items_excluded_by_default(self):
        included = 0
        for user in self.users:
            seen = set(self.m.seen(user))
            self.assertTrue(seen, f"synthetic user {user} has no training items")
            for value in (None, "true", "1"):
                params = {"k": 50} if value is None else {"k": 50, "exclude_seen": value}
                got = [x["item"] for x in self.recs(user, **params)["items"]]
                self.assertFalse(seen & set(got), f"{user} exclude_seen={value}: seen items "
                                                  f"returned: {sorted(seen & set(got))}")
            for value in ("false", "0"):
                body = self.recs(user, k=50, exclude_seen=value)
                top, allowed = self.m.recommend(user, 50, exclude_seen=False)
                self.check_ranking(f"{user} exclude_seen={value}", body["items"], top, allowed)
                included += len(seen & {x["item"] for x in body["items"]})
        # the model ranks training items high, so the check above really saw them come back
        self.assertGreater(included, 0, "no seen item in any exclude_seen=false top 50")

    def test_exclude(self):
        for user in self.users[:4]:
            top, _ = self.m.recommend(user, 10)
            unseen = [i for i, _ in top[:3]]
            exclude = unseen + [self.m.seen(user)[0], "no-such-item", "i1"]
            for encode in (False, True):
                q = "exclude=" + (urllib.parse.quote(",".join(exclude), safe="") if encode
                                  else ",".join(exclude)) + "&k=15"
                body = self.recs(user, raw_query=q)
                want, allowed = self.m.recommend(user, 15, exclude=exclude)
                self.check_ranking(f"{user} exclude={exclude}", body["items"], want, allowed)
                got = {x["item"] for x in body["items"]}
                self.assertFalse(got & set(exclude), f"excluded items returned: "
                                                     f"{got & set(exclude)}")

    def test_candidates(self):
        for user in self.users[:4]:
            seen = self.m.seen(user)
            unseen = [i for i in self.m.items if i not in set(seen)]
            cands = self.rng.sample(unseen, 40)
            for encode in (False, True):
                joined = ",".join(cands)
                q = "candidates=" + (urllib.parse.quote(joined, safe="") if encode else joined)
                body = self.recs(user, raw_query=q + "&k=10")
                want, allowed = self.m.recommend(user, 10, candidates=cands)
                self.check_ranking(f"{user} candidates, k=10", body["items"], want, allowed)
            # k larger than the candidate list: every candidate, ranked
            body = self.recs(user, candidates=",".join(cands), k=100)
            want, allowed = self.m.recommend(user, 100, candidates=cands)
            self.assertEqual(len(want), 40)
            self.check_ranking(f"{user} 40 candidates, k=100", body["items"], want, allowed)
            # seen candidates are dropped unless exclude_seen=false; exclude applies too
            mixed = cands[:10] + seen[:5]
            body = self.recs(user, candidates=",".join(mixed), k=100)
            want, allowed = self.m.recommend(user, 100, candidates=mixed)
            self.check_ranking(f"{user} candidates with seen items", body["items"], want, allowed)
            body = self.recs(user, candidates=",".join(mixed), k=100, exclude_seen="false")
            want, allowed = self.m.recommend(user, 100, exclude_seen=False, candidates=mixed)
            self.assertEqual(len(want), 15)
            self.check_ranking(f"{user} candidates, exclude_seen=false", body["items"], want,
                               allowed)
            body = self.recs(user, candidates=",".join(cands), exclude=",".join(cands[:5]), k=100)
            want, allowed = self.m.recommend(user, 100, candidates=cands, exclude=cands[:5])
            self.check_ranking(f"{user} candidates and exclude", body["items"], want, allowed)
        # every candidate must be known
        self.expect_error(self.get(self.c, recs_path("u1", candidates="i1,no-such-item,i2")), 404)

    def test_explicit_model(self):
        body = self.recs("u3", model=MODEL, k=5)
        top, allowed = self.m.recommend("u3", 5)
        self.check_ranking("u3 ?model=demo", body["items"], top, allowed)
        self.expect_error(self.get(self.c, recs_path("u3", model="no-such-model")), 404)

    def test_recommendations_errors(self):
        for k in ("0", "1001", "-1", "abc", "1.5", "", "20x", "99999999999999999999"):
            self.expect_error(self.get(self.c, recs_path("u1", k=k)), 400)
        self.expect_error(self.get(self.c, recs_path("u1", exclude_seen="maybe")), 400)
        r = self.get(self.c, recs_path("no-such-user"))
        self.expect_error(r, 404)
        self.assertEqual(r.json()["error"]["message"],
                         f"unknown user 'no-such-user' in model {MODEL} v{self.m.version}")
        self.expect_error(self.get(self.c, recs_path("u 1")), 404)
        self.expect_error(self.get(self.c, recs_path("u2000")), 404)

    # -- similar

    def test_similar_equal_brute_force(self):
        items = ["i0", "i1", "i42", "i1499"] + self.rng.sample(self.m.items, 4)
        for item in items:
            for k in (None, 1, 5, 1000):
                params = {} if k is None else {"k": k}
                r = self.get(self.c, similar_path(item, **params))
                body = self.expect(r, 200)
                self.assertEqual((body["model"], body["version"], body["item"]),
                                 (MODEL, self.m.version, item))
                self.assertNotIn(item, [x["item"] for x in body["items"]], "item similar to itself")
                top, allowed = self.m.similar(item, 20 if k is None else k)
                self.check_ranking(f"similar {item} k={k}", body["items"], top, allowed)
        body = self.expect(self.get(self.c, similar_path("i3", model=MODEL, k=3)), 200)
        self.assertEqual(len(body["items"]), 3)

    def test_similar_errors(self):
        for k in ("0", "1001", "x", ""):
            self.expect_error(self.get(self.c, similar_path("i1", k=k)), 400)
        r = self.get(self.c, similar_path("no-such-item"))
        self.expect_error(r, 404)
        self.assertEqual(r.json()["error"]["message"],
                         f"unknown item 'no-such-item' in model {MODEL} v{self.m.version}")
        self.expect_error(self.get(self.c, similar_path("i1", model="no-such-model")), 404)

    # -- abilities lightgcn does not have (yet): fold-in (POST /v1/recommend) and explain

    def recommend_new(self, body, query="", client=None):
        return self.post(client or self.c, "/v1/recommend" + query, json_body=body)

    def test_recommend_new_bad_requests(self):
        invalid = [
            {"items": []},
            {"items": ["i1"] * 10001},
            {"items": "i1"},
            {"items": {"i1": 1}},
            {"items": [1, 2]},
            {"items": ["i1", None]},
            {"items": ["i1"], "k": 0},
            {"items": ["i1"], "k": 1001},
            {"items": ["i1"], "k": -3},
            {"items": ["i1"], "k": "5"},
            {"items": ["i1"], "k": 2.5},
            {"items": ["i1"], "k": None},
            {"items": ["i1"], "model": MODEL},
            {"items": ["i1"], "user": "u1"},
            {"k": 5},
            {},
            [["i1"]],
            "i1",
            None,
        ]
        for body in invalid:
            self.assertTrue(SPEC.request_errors("/v1/recommend", "POST", body), f"{body} is valid?")
            if body is None:
                r = self.post(self.c, "/v1/recommend", body=b"null",
                              headers={"Content-Type": "application/json"})
            else:
                r = self.recommend_new(body)
            self.expect_error(r, 400)
        for text in (b'{"items": [', b"{items: [i1]}", b"", b"\xff\xfe", b'{"items": ["i1"]} x'):
            r = self.post(self.c, "/v1/recommend", body=text,
                          headers={"Content-Type": "application/json"})
            self.expect_error(r, 400)
        # the body is checked before the model is looked up
        self.expect_error(self.recommend_new({"items": []}, "?model=no-such-model"), 400)
        # a body in another media type is refused before it is read
        r = self.post(self.c, "/v1/recommend", body=b'{"items": ["i1"]}',
                      headers={"Content-Type": "text/plain"})
        self.expect_error(r, 415)

    def test_recommend_new_not_found(self):
        self.expect_error(self.recommend_new({"items": ["i1"]}, "?model=no-such-model"), 404)
        r = self.recommend_new({"items": ["no-such-item", "nor-this-one"], "k": 5})
        self.expect_error(r, 404)
        self.assertIn(f"model {MODEL} v{self.m.version}", r.json()["error"]["message"])

    def test_recommend_new_fold_in(self):
        """A lightgcn version folds a new user in: the top-K equals numpy's ranking of the item
        vectors against the fold-in vector computed from the stored tensors, the known items
        excluded as seen; unknown items next to a known one are ignored, repeats count once."""
        self.assertEqual(self.m.kind, "lightgcn")
        cases = [(["i1", "i2"], 20), (["no-such-item", "i7"], 5), (["i3"] * 3, 1000),
                 (self.m.seen("u5"), 50), (self.m.items[:10000], 20)]
        for items, k in cases:
            body = {"items": items, "k": k}
            self.assertFalse(SPEC.request_errors("/v1/recommend", "POST", body))
            for query in ("", f"?model={MODEL}"):
                out = self.expect(self.recommend_new(body, query), 200)
                self.assertEqual((out["model"], out["version"]), (MODEL, self.m.version))
                known = {i for i in items if i in self.m.item_index}
                self.assertEqual(out["known_items"], len(known))
                expected, allowed = self.m.recommend_new(items, k)
                got = out["items"]
                self.assertEqual(len(got), min(k, self.m.n_items - len(known)))
                self.assertFalse(known & {e["item"] for e in got}, "a known item was recommended")
                problems = sl.ranking_problems(got, expected, allowed, 1e-4)
                self.assertFalse(problems, f"{items[:5]}: {problems[:3]}")

    def test_published_item_layers_rebuild_the_user_vectors(self):
        """lgn.item_layers holds each item's embedding at layers 0..L-1: a trained user's stored
        vector is (e_u + sum over layers of one propagation step from them) / (L + 1), with the
        training degrees. So the tensor the fold-in uses is the model's own propagation."""
        layers = self.m.tensors["lgn.item_layers"].astype(np.float64)
        emb = self.m.tensors["param.user_emb"].astype(np.float64)
        n_layers = layers.shape[1] // self.m.dim
        self.assertEqual(n_layers, self.m.params["layers"])
        deg = np.bincount(self.m.seen_idx, minlength=self.m.n_items).astype(np.float64)
        for user in self.users[:20]:
            u = self.m.user_index[user]
            items = self.m.seen_idx[self.m.seen_ptr[u]:self.m.seen_ptr[u + 1]]
            w = 1 / np.sqrt(len(items)) / np.sqrt(deg[items])
            prop = (w[:, None] * layers[items]).sum(axis=0).reshape(n_layers, self.m.dim)
            want = (emb[u] + prop.sum(axis=0)) / (n_layers + 1)
            np.testing.assert_allclose(self.m.user_vecs[u], want, rtol=1e-4, atol=1e-5)

    def test_explain(self):
        self.expect_error(self.get(self.c, explain_path("u1", "i1", model="no-such-model")), 404)
        for user, item, unknown in (("no-such-user", "i1", "user 'no-such-user'"),
                                    ("u1", "no-such-item", "item 'no-such-item'"),
                                    ("no-such-user", "no-such-item", "user 'no-such-user'")):
            r = self.get(self.c, explain_path(user, item))
            self.expect_error(r, 404)
            self.assertEqual(r.json()["error"]["message"],
                             f"unknown {unknown} in model {MODEL} v{self.m.version}")
        want = f"model {MODEL} v{self.m.version} (kind lightgcn) cannot explain recommendations"
        for user, item, params in (("u1", "i1", {}), ("u1999", "i1499", {"model": MODEL}),
                                   ("u5", self.m.seen("u5")[0], {})):
            r = self.get(self.c, explain_path(user, item, **params))
            self.expect_error(r, 422)
            self.assertEqual(r.json()["error"]["message"], want)

    # -- score

    def score(self, body, status=200, **kw):
        r = self.post(self.c, "/v1/score", json_body=body, **kw)
        out = self.expect(r, status)
        if status == 200:
            self.assertEqual((out["model"], out["version"]), (MODEL, self.m.version))
        return out

    def test_score_user_items(self):
        for user in self.users[:5]:
            items = self.rng.sample(self.m.items, 50) + self.m.seen(user)[:3]
            items += items[:2]  # a repeated item is scored again, in place
            self.rng.shuffle(items)
            self.assertFalse(SPEC.request_errors("/v1/score", "POST",
                                                 {"user": user, "items": items}))
            out = self.score({"user": user, "items": items})
            if "user" in out:
                self.assertEqual(out["user"], user)
            self.assertEqual(len(out["scores"]), len(items))
            for item, s in zip(items, out["scores"]):
                self.assertTrue(sl.close_enough(s, self.m.score(user, item), TOL),
                                f"{user},{item}: {s} vs numpy {self.m.score(user, item)}")

    def test_score_pairs(self):
        pairs = [[self.rng.choice(self.m.users), self.rng.choice(self.m.items)] for _ in range(300)]
        out = self.score({"pairs": pairs})
        self.assertEqual(len(out["scores"]), len(pairs))
        for (user, item), s in zip(pairs, out["scores"]):
            self.assertTrue(sl.close_enough(s, self.m.score(user, item), TOL),
                            f"{user},{item}: {s} vs numpy {self.m.score(user, item)}")
        out = self.score({"pairs": [["u5", "i9"]]})
        self.assertEqual(len(out["scores"]), 1)

    def test_score_limits_and_options(self):
        items = [self.m.items[i % self.m.n_items] for i in range(10000)]  # maxItems
        out = self.score({"user": "u9", "items": items})
        self.assertEqual(len(out["scores"]), 10000)
        self.assertTrue(sl.close_enough(out["scores"][9999], self.m.score("u9", items[9999]), TOL))
        # model parameter; a charset parameter on the media type is still application/json
        r = self.post(self.c, "/v1/score?model=" + MODEL, body='{"user":"u1","items":["i1"]}',
                      headers={"Content-Type": "application/json; charset=utf-8"})
        self.expect(r, 200)
        r = self.post(self.c, "/v1/score?model=no-such-model", json_body={"user": "u1",
                                                                          "items": ["i1"]})
        self.expect_error(r, 404)

    def test_score_bad_requests(self):
        invalid = [
            {"user": 5, "items": ["i1"]},
            {"user": "u1", "items": "i1"},
            {"user": "u1", "items": [1, 2]},
            {"user": "u1", "items": []},
            {"user": "u1"},
            {"items": ["i1"]},
            {"user": "u1", "items": ["i1"], "extra": 1},
            {"user": "u1", "items": ["i1"], "pairs": [["u1", "i1"]]},
            {"pairs": []},
            {"pairs": [["u1"]]},
            {"pairs": [["u1", "i1", "i2"]]},
            {"pairs": [[1, 2]]},
            {"pairs": ["u1", "i1"]},
            {"pairs": {"u1": "i1"}},
            {"user": "u1", "items": ["i1"] * 10001},
            [["u1", "i1"]],
            "u1",
            None,
            {},
        ]
        for body in invalid:
            self.assertTrue(SPEC.request_errors("/v1/score", "POST", body), f"{body} is valid?")
            r = self.post(self.c, "/v1/score", json_body=body) if body is not None else \
                self.post(self.c, "/v1/score", body=b"null",
                          headers={"Content-Type": "application/json"})
            self.expect_error(r, 400)
        for text in (b'{"user": "u1", "items": [', b"{user: u1}", b"", b"\xff\xfe",
                     b'{"user": "u1", "items": ["i1"]} trailing', b'{"user":"u1","items":["i1",]}'):
            r = self.post(self.c, "/v1/score", body=text,
                          headers={"Content-Type": "application/json"})
            self.expect_error(r, 400)

    def test_score_unknown_ids(self):
        """404 naming the id, the model and its version: a user or item may be known to another
        version (the trainer publishes only the users and items it trained)."""
        for body, what in (({"user": "no-such-user", "items": ["i1"]}, "user 'no-such-user'"),
                           ({"user": "u1", "items": ["i1", "no-such-item"]}, "item 'no-such-item'"),
                           ({"pairs": [["u1", "i1"], ["no-such-user", "i2"]]},
                            "user 'no-such-user'"),
                           ({"pairs": [["u1", "i1"], ["u2", "no-such-item"]]},
                            "item 'no-such-item'")):
            r = self.post(self.c, "/v1/score", json_body=body)
            self.expect_error(r, 404)
            self.assertEqual(r.json()["error"]["message"],
                             f"unknown {what} in model {MODEL} v{self.m.version}")

    def test_score_wrong_content_type(self):
        body = b'{"user": "u1", "items": ["i1"]}'
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                      None):
            headers = {} if ctype is None else {"Content-Type": ctype}
            r = self.post(self.c, "/v1/score", body=body, headers=headers)
            self.expect_error(r, 415)

    def test_body_limit(self):
        # just under the default 1 MiB: accepted (JSON whitespace pads it)
        core = b'{"user": "u1", "items": ["i1", "i2"]}'
        body = core[:-1] + b" " * (1_000_000 - len(core)) + b"}"
        r = self.post(self.c, "/v1/score", body=body, headers={"Content-Type": "application/json"})
        self.assertEqual(len(self.expect(r, 200)["scores"]), 2)
        # over it, sent in full: 413. The server may answer (and close) before reading it all,
        # so send on a raw socket, stop when the server stops reading, then read the answer: a
        # server that closes with unread data pending resets the connection and the 413 is lost.
        body = core[:-1] + b" " * (1_048_577 - len(core)) + b"}"
        head = (b"POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        data, sent = sl.send_and_read(self.srv.port, head + body)
        self.assertTrue(data, f"1 MiB + 1 byte body: no answer (sent {sent} bytes, then the "
                              f"connection was reset or closed)")
        status, headers, rbody = sl.parse_raw_response(data)
        self.assertEqual(status, 413, data[:300])
        try:
            SPEC.validate("/v1/score", "POST", status, rbody, headers.get("content-type"))
        except AssertionError as e:
            self.fail(str(e))

    def test_body_limit_chunked(self):
        """A chunked body (no Content-Length) that grows over the limit is cut off: the contract
        (openapi.yaml, 413) says the connection is closed, since libmicrohttpd cannot answer in
        the middle of a body. It must close promptly, not wait for the rest, and answer nothing
        but a 413 if anything."""
        head = (b"POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b" " * 65536
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(20))
        t0 = time.monotonic()
        data, sent = sl.send_and_read(self.srv.port, head + b'1\r\n{\r\n' + chunks)
        took = time.monotonic() - t0
        self.assertLess(took, 5 * sl.SLOW, f"chunked body over 1 MiB: no close after {took:.1f} s")
        if data:
            status, headers, rbody = sl.parse_raw_response(data)
            self.assertEqual(status, 413, data[:300])
        # and a small chunked body is read like any other
        body = b'{"user": "u1", "items": ["i1"]}'
        closing = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        data, _ = sl.send_and_read(self.srv.port, closing + b"%x\r\n%s\r\n0\r\n\r\n"
                                   % (len(body), body))
        status, headers, rbody = sl.parse_raw_response(data)
        self.assertEqual(status, 200, data[:300])

    def test_body_limit_answered_before_the_body(self):
        """A Content-Length far over the limit is refused from the headers: the 413 comes while
        most of the body was never sent."""
        head = (b"POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000000\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.srv.port), timeout=10) as s:
            s.sendall(head + b'{"user": "u1", "items": [' + b'"i1", ' * 5000)
            t0 = time.monotonic()
            data = sl.read_until_close(s, 5 * sl.SLOW)
            elapsed = time.monotonic() - t0
        self.assertTrue(data, "no answer to a 100 MB Content-Length with 30 kB sent "
                              f"(waited {elapsed:.1f} s)")
        status, headers, body = sl.parse_raw_response(data)
        self.assertEqual(status, 413, data[:300])
        try:
            SPEC.validate("/v1/score", "POST", status, body, headers.get("content-type"))
        except AssertionError as e:
            self.fail(str(e))
        self.assertLess(elapsed, 2.0 * sl.SLOW, "413 took too long: was the body awaited?")
        self.expect(self.get(self.c, "/healthz"), 200)

    # -- methods and paths

    def test_method_not_allowed(self):
        cases = [("DELETE", "/v1/score", "POST"), ("GET", "/v1/score", "POST"),
                 ("PUT", "/v1/users/u1/recommendations", "GET"),
                 ("POST", "/v1/users/u1/recommendations", "GET"),
                 ("POST", "/v1/items/i1/similar", "GET"), ("POST", "/v1/models", "GET"),
                 ("POST", "/healthz", "GET"), ("DELETE", "/readyz", "GET"),
                 ("POST", "/metrics", "GET"), ("GET", "/admin/reload", "POST"),
                 ("PATCH", "/v1/models", "GET"), ("GET", "/v1/recommend", "POST"),
                 ("PUT", "/v1/recommend", "POST"),
                 ("POST", "/v1/users/u1/recommendations/i1/explain", "GET")]
        for method, path, allowed in cases:
            body = b"{}" if method in ("POST", "PUT", "PATCH") else None
            headers = {"Content-Type": "application/json"} if body else {}
            r = self.call(self.c, method, path, body=body, headers=headers)
            self.expect_error(r, 405)
            allow = {m.strip().upper() for m in (r.header("Allow") or "").split(",")}
            self.assertIn(allowed, allow, f"{method} {path}: Allow header {r.header('Allow')!r}")
            self.assertFalse(allow - {allowed, "HEAD", "OPTIONS"},
                             f"{method} {path}: Allow {r.header('Allow')!r} names methods the "
                             f"API does not have")

    def test_unknown_paths(self):
        for method, path in [("GET", "/"), ("GET", "/v1"), ("GET", "/v1/nope"),
                             ("GET", "/v1/users/u1"), ("GET", "/v1/users/u1/recommendations/x"),
                             ("GET", "/v1/items/i1"), ("GET", "/healthzz"),
                             ("GET", "/v2/score"), ("POST", "/v1/nope"),
                             ("GET", "/v1/users//recommendations"), ("GET", "/admin"),
                             ("GET", "/v1/users/u1/recommendations/i1"),
                             ("GET", "/v1/users/u1/recommendations//explain"),
                             ("GET", "/v1/users/u1/recommendations/i1/explain/x"),
                             ("POST", "/v1/recommend/x"), ("POST", "/v1/recommendations")]:
            r = self.call(self.c, method, path, body=b"{}" if method == "POST" else None,
                          headers={"Content-Type": "application/json"} if method == "POST" else {})
            self.expect_error(r, 404)

    # -- models and metrics

    def test_models(self):
        models = self.expect(self.get(self.c, "/v1/models"), 200)["models"]
        self.assertEqual(len(models), 1, models)
        e = models[0]
        want = {"name": MODEL, "version": self.m.version, "kind": self.m.kind,
                "users": self.m.n_users, "items": self.m.n_items, "dim": self.m.dim,
                "created": self.m.created, "abilities": ["fold-in"]}  # lightgcn folds in
        self.assertEqual({k: e[k] for k in want}, want)
        self.assertEqual(e["metrics"].keys(), self.m.metrics.keys())
        for key, value in self.m.metrics.items():
            if isinstance(value, float):
                self.assertTrue(sl.close_enough(e["metrics"][key], value, 1e-6), key)
        self.assertRegex(e["loaded_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertGreaterEqual(e["loaded_at"][:19], e["created"][:19])

    def metrics(self, client=None):
        r = self.get(client or self.c, "/metrics")
        self.expect(r, 200)
        self.assertRegex(r.header("Content-Type", ""), r"^text/plain")
        try:
            return sl.parse_metrics(r.body.decode())
        except ValueError as e:
            self.fail(f"/metrics is not Prometheus text: {e}")

    def test_metrics(self):
        self.expect(self.get(self.c, recs_path("u1")), 200)
        self.expect_error(self.get(self.c, recs_path("no-such-user")), 404)
        self.expect_error(self.get(self.c, recs_path("u1", k=0)), 400)
        samples, types = self.metrics()
        req = [(labels, v) for n, labels, v in samples if n == "gnnrec_http_requests_total"]
        self.assertTrue(req, "no gnnrec_http_requests_total")
        for labels, _ in req:
            self.assertIn("endpoint", labels)
            self.assertIn("status", labels)
        statuses = {labels["status"] for labels, _ in req}
        self.assertTrue({"200", "400", "404"} <= statuses, f"statuses counted: {statuses}")
        self.assertEqual(types.get("gnnrec_http_requests_total"), "counter")
        self.assertEqual(types.get("gnnrec_http_request_duration_seconds"), "histogram")
        problems = sl.histogram_problems(samples, "gnnrec_http_request_duration_seconds")
        self.assertFalse(problems, problems)
        for labels, _ in [(lab, v) for n, lab, v in samples
                          if n == "gnnrec_http_request_duration_seconds_bucket"]:
            self.assertIn("endpoint", labels)
        self.assertEqual(sl.metric_value(samples, "gnnrec_model_version", model=MODEL),
                         self.m.version)
        loaded = sl.metric_value(samples, "gnnrec_model_loaded_timestamp_seconds", model=MODEL)
        self.assertIsNotNone(loaded, "no gnnrec_model_loaded_timestamp_seconds")
        self.assertLess(abs(loaded - time.time()), 3600, f"loaded timestamp {loaded}")
        for family in ("gnnrec_reloads_total", "gnnrec_reload_failures_total"):
            self.assertIsNotNone(sl.metric_value(samples, family), f"no {family}")
        self.assertEqual(sl.metric_value(samples, "gnnrec_reload_failures_total"), 0)
        problems = sl.histogram_problems(samples, "gnnrec_batch_queries")
        self.assertFalse(problems, problems)
        # counters move: 7 more requests on recommendations, 200 and 404
        before = sl.metric_value(samples, "gnnrec_http_requests_total")
        ok_before = sl.metric_value(samples, "gnnrec_http_request_duration_seconds_count") or 0
        for i in range(5):
            self.expect(self.get(self.c, recs_path(f"u{i}")), 200)
        for i in range(2):
            self.expect_error(self.get(self.c, recs_path("no-such-user")), 404)
        samples, _ = self.metrics()
        self.assertGreaterEqual(sl.metric_value(samples, "gnnrec_http_requests_total") - before, 7)
        self.assertGreaterEqual(
            sl.metric_value(samples, "gnnrec_http_request_duration_seconds_count") - ok_before, 7)

    # -- connections

    def test_keep_alive(self):
        """200 requests of every kind (answers and errors) on one HTTP/1.1 connection."""
        c = self.srv.client()
        closing = {}
        try:
            for i in range(200):
                kind = i % 5
                if kind == 0:
                    r = self.get(c, recs_path(f"u{i}", k=5))
                    self.expect(r, 200)
                elif kind == 1:
                    r = self.post(c, "/v1/score", json_body={"user": "u1", "items": ["i1", "i2"]})
                    self.expect(r, 200)
                elif kind == 2:
                    r = self.get(c, recs_path("no-such-user"))
                    self.expect_error(r, 404)
                elif kind == 3:
                    r = self.post(c, "/v1/score", body=b"{",
                                  headers={"Content-Type": "application/json"})
                    self.expect_error(r, 400)
                else:
                    r = self.get(c, similar_path(f"i{i}", k=3))
                    self.expect(r, 200)
                if (r.header("Connection") or "").lower() == "close":
                    key = f"{r.method} {re.sub(r'/[ui][0-9]+/', '/ID/', r.path.split('?')[0])}" \
                          f" -> {r.status}"
                    closing[key] = closing.get(key, 0) + 1
            self.assertFalse(closing, f"'Connection: close' (then a new connection) on: {closing}")
            self.assertEqual(c.connects, 1, "200 requests needed more than one connection")
        finally:
            c.close()

    def test_pipelining(self):
        """HTTP/1.1 requests sent back to back before any answer: each answered, in order."""
        body = b'{"user": "u1", "items": ["i1", "i2"]}'
        reqs = (b"GET /v1/users/u1/recommendations?k=3 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s"
                b"GET /v1/items/i1/similar?k=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                % (len(body), body))
        data, _ = sl.send_and_read(self.srv.port, reqs)
        got = sl.split_responses(data)
        self.assertEqual([g[0] for g in got], [200, 200, 200, 200],
                         f"4 pipelined requests, {len(got)} answers: {data[:600]!r}")
        self.assertEqual(len(json.loads(got[0][2])["items"]), 3)
        self.assertEqual(len(json.loads(got[1][2])["scores"]), 2)
        self.assertEqual(len(json.loads(got[2][2])["items"]), 2)

    def test_concurrent_clients(self):
        users = self.rng.sample(self.m.users, 16)
        expected = {u: self.m.recommend(u, 10) for u in users}
        failures = []

        def worker(seed):
            rng = random.Random(seed)
            c = self.srv.client()
            try:
                for i in range(50):
                    user = rng.choice(users)
                    try:
                        if i % 3 == 2:
                            items = rng.sample(self.m.items, 5)
                            r = self.post(c, "/v1/score", json_body={"user": user, "items": items})
                            if r.status != 200:
                                failures.append(repr(r))
                                continue
                            for item, s in zip(items, r.json()["scores"]):
                                if not sl.close_enough(s, self.m.score(user, item), TOL):
                                    failures.append(f"score {user},{item}: {s}")
                        else:
                            r = self.get(c, recs_path(user, k=10))
                            if r.status != 200:
                                failures.append(repr(r))
                                continue
                            top, allowed = expected[user]
                            p = sl.ranking_problems(r.json()["items"], top, allowed, TOL)
                            if p:
                                failures.append(f"{user}: {p}")
                    except Exception as e:  # noqa: BLE001 (collected and reported)
                        failures.append(f"thread {seed} request {i}: {e!r}")
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * sl.SLOW)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads hung")
        self.assertFalse(failures, f"{len(failures)} failures of 400: {failures[:5]}")
        sl.log(f"  8 clients x 50 requests: {time.monotonic() - t0:.2f} s")


class TestHttpCases(ServerCase):
    """tests/cases/http/<name>/{request,expected}: raw requests and what they must get."""

    def test_cases(self):
        root = os.path.join(sl.SOURCE_DIR, "tests", "cases", "http")
        names = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
        self.assertGreater(len(names), 10)
        port = state["server"].port
        for name in names:
            with self.subTest(case=name):
                with open(os.path.join(root, name, "request"), "rb") as f:
                    request = f.read()
                with open(os.path.join(root, name, "expected")) as f:
                    want = json.load(f)
                data, _ = sl.send_and_read(port, request)
                self.assertTrue(data, f"{name}: no answer")
                status, headers, body = sl.parse_raw_response(data)
                method, target = request.split(b" ", 2)[:2]
                r = sl.Response(method.decode(), target.decode(), status, "", headers, body, 0)
                r.header = lambda k, d=None: headers.get(k.lower(), d)
                try:
                    SPEC.validate_response(r)
                except AssertionError as e:
                    self.fail(f"{name}: {e}")
                self.assertEqual(status, want["status"], f"{name}: {data[:300]!r}")
                if "code" in want:
                    self.assertEqual(r.json()["error"]["code"], want["code"], name)
                if "allow" in want:
                    allow = {m.strip().upper() for m in headers.get("allow", "").split(",")}
                    self.assertIn(want["allow"], allow, f"{name}: Allow {headers.get('allow')!r}")
                for key, value in want.get("body", {}).items():
                    self.assertEqual(r.json().get(key), value, f"{name}: body[{key!r}]")
                for key in ("items", "scores"):
                    if key in want:
                        self.assertEqual(len(r.json()[key]), want[key], f"{name}: {key}")


class TestNoModel(ServerCase):
    """A server started before its store holds any model: alive, not ready, 503 on queries,
    until a version is published."""

    def check_unavailable(self, srv):
        c = srv.client()
        try:
            self.expect(self.get(c, "/healthz"), 200)
            self.expect_error(self.get(c, "/readyz"), 503)
            self.expect_error(self.get(c, recs_path("u1")), 503)
            self.expect_error(self.get(c, similar_path("i1")), 503)
            self.expect_error(self.post(c, "/v1/score", json_body={"user": "u1", "items": ["i1"]}),
                              503)
            self.assertEqual(self.expect(self.get(c, "/v1/models"), 200)["models"], [])
            r = self.post(c, "/admin/reload")
            if r.status == 200:
                self.assertEqual(r.json()["loaded"], [])
            else:
                self.expect_error(r, 503)
        finally:
            c.close()

    def publish_and_wait(self, srv, db):
        version = sl.train(db, "late", seed=3)
        t_published = time.monotonic()
        srv.wait_ready(10 * sl.SLOW)
        took = time.monotonic() - t_published
        sl.log(f"  ready {took:.2f} s after the publish")
        self.assertLess(took, 3.0 * sl.SLOW, "version noticed too late (contract: within 2 s)")
        m = sl.StoredModel(db, "late")
        c = srv.client()
        try:
            body = self.expect(self.get(c, recs_path("u5", k=10)), 200)
            self.assertEqual((body["model"], body["version"]), ("late", version))
            top, allowed = m.recommend("u5", 10)
            self.check_ranking("u5 after the late publish", body["items"], top, allowed)
        finally:
            c.close()
        self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])

    def run_case(self, db, name):
        tmp = sl.TempDir()
        try:
            srv = sl.Server(db(tmp), tmp.path, name=name)
            try:
                srv.start(wait_ready=False)
                time.sleep(0.3)
                self.check_unavailable(srv)
                self.publish_and_wait(srv, db(tmp))
            finally:
                srv.kill()
        finally:
            tmp.close()

    def test_missing_store(self):
        self.run_case(lambda tmp: tmp.join("missing.sqlite"), "missing")

    def test_empty_store(self):
        def db(tmp):
            path = tmp.join("empty.sqlite")
            if not os.path.exists(path):
                sl.make_empty_store(path)
            return path
        self.run_case(db, "empty")


class TestSeveralModels(ServerCase):
    """?model= picks among the models of a store; --model sets the default."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = sl.TempDir()
        cls.db = cls.tmp.join("two.sqlite")
        sl.train(cls.db, "alpha", seed=1)
        sl.train(cls.db, "beta", seed=2)
        sl.train(cls.db, "beta", seed=3)
        cls.alpha = sl.StoredModel(cls.db, "alpha")
        cls.beta = sl.StoredModel(cls.db, "beta")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.close()

    def test_model_parameter(self):
        srv = sl.Server(self.db, self.tmp.path, "--model", "alpha", name="two")
        try:
            srv.start()
            c = srv.client()
            models = self.expect(self.get(c, "/v1/models"), 200)["models"]
            self.assertEqual(sorted((m["name"], m["version"]) for m in models),
                             [("alpha", 1), ("beta", 2)])
            for query, m in (({}, self.alpha), ({"model": "alpha"}, self.alpha),
                             ({"model": "beta"}, self.beta)):
                body = self.expect(self.get(c, recs_path("u8", k=10, **query)), 200)
                self.assertEqual((body["model"], body["version"]), (m.name, m.version))
                top, allowed = m.recommend("u8", 10)
                self.check_ranking(f"u8 {query}", body["items"], top, allowed)
                body = self.expect(self.get(c, similar_path("i8", k=5, **query)), 200)
                self.assertEqual((body["model"], body["version"]), (m.name, m.version))
                top, allowed = m.similar("i8", 5)
                self.check_ranking(f"similar i8 {query}", body["items"], top, allowed)
                qs = "?" + urllib.parse.urlencode(query) if query else ""
                out = self.expect(self.post(c, "/v1/score" + qs,
                                            json_body={"pairs": [["u8", "i8"]]}), 200)
                self.assertEqual((out["model"], out["version"]), (m.name, m.version))
                self.assertTrue(sl.close_enough(out["scores"][0], m.score("u8", "i8"), TOL))
            samples, _ = sl.parse_metrics(self.get(c, "/metrics").body.decode())
            self.assertEqual(sl.metric_value(samples, "gnnrec_model_version", model="beta"), 2)
            self.assertEqual(sl.metric_value(samples, "gnnrec_model_version", model="alpha"), 1)
            c.close()
            self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])
        finally:
            srv.kill()

    def test_no_default_model(self):
        """Two models, no --model, no ?model=: the request cannot be answered (a documented
        error status), while ?model= works."""
        srv = sl.Server(self.db, self.tmp.path, name="two-nodefault")
        try:
            srv.start()
            c = srv.client()
            r = self.get(c, recs_path("u8"))
            self.assertIn(r.status, (400, 404), f"ambiguous model: {r}")
            self.expect_error(r, r.status)
            body = self.expect(self.get(c, recs_path("u8", model="beta")), 200)
            self.assertEqual(body["version"], 2)
            c.close()
            self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])
        finally:
            srv.kill()


class TestUnknownKind(ServerCase):
    """A version of a kind this build does not know (a newer trainer's) is served by inner
    product with no abilities, and its load is logged once."""

    def test_unknown_kind(self):
        tmp = sl.TempDir()
        try:
            db = tmp.join("kinds.sqlite")
            sl.train(db, "future", seed=4)
            version = sl.publish_copy(db, "future", kind="kgnn")
            m = sl.StoredModel(db, "future", version)
            srv = sl.Server(db, tmp.path, name="kinds")
            try:
                srv.start()
                c = srv.client()
                models = self.expect(self.get(c, "/v1/models"), 200)["models"]
                self.assertEqual([(e["name"], e["version"], e["kind"], e["abilities"])
                                  for e in models], [("future", version, "kgnn", [])])
                body = self.expect(self.get(c, recs_path("u5", k=10)), 200)
                self.assertEqual(body["version"], version)
                top, allowed = m.recommend("u5", 10)
                self.check_ranking("u5, unknown kind", body["items"], top, allowed)
                head = f"model future v{version} (kind kgnn) cannot"
                r = self.post(c, "/v1/recommend", json_body={"items": ["i1"]})
                self.expect_error(r, 422)
                self.assertEqual(r.json()["error"]["message"], f"{head} fold in new users")
                r = self.get(c, explain_path("u5", "i1"))
                self.expect_error(r, 422)
                self.assertEqual(r.json()["error"]["message"], f"{head} explain recommendations")
                self.assertEqual(self.expect(self.post(c, "/admin/reload"), 200)["loaded"], [])
                c.close()
                self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])
                lines = [x for x in srv.stderr().splitlines() if "unknown to this build" in x]
                self.assertEqual(len(lines), 1, f"logged {len(lines)} times: {lines}")
                self.assertIn(f"future v{version}: kind 'kgnn' is unknown", lines[0])
            finally:
                srv.kill()
        finally:
            tmp.close()


class TestSlowClients(ServerCase):
    """Clients that send part of a request and stall occupy no worker: others are served at
    once, and the stalled ones are disconnected after --conn-timeout."""

    def test_stalled_clients(self):
        timeout = 2
        srv = sl.Server(state["db"], state["tmp"].path, "--conn-timeout", str(timeout),
                        "--threads", "2", name="slow")
        stalled = []
        try:
            srv.start()
            partial = [
                b"GET /v1/users/u1/recommendations HTTP/1.1\r\nHost: x\r\n",  # no blank line
                b"GET /v1/users/u1/recomm",
                b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{\"user\": ",  # body cut short
                b"",  # connects and says nothing
            ]
            for data in partial * 2:  # 8 stalled connections, 2 server threads
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
                if data:
                    s.sendall(data)
                stalled.append((s, time.monotonic(), data))
            # everyone else is served promptly, on fresh connections and on one kept alive
            worst = 0.0
            end = time.monotonic() + timeout + 0.5
            kept = srv.client()
            n = 0
            while time.monotonic() < end:
                fresh = srv.client()
                for c in (kept, fresh):
                    r = self.get(c, recs_path(f"u{n}", k=5))
                    self.expect(r, 200)
                    worst = max(worst, r.elapsed)
                    n += 1
                fresh.close()
                time.sleep(0.05)
            kept.close()
            sl.log(f"  {n} requests next to 8 stalled connections, slowest {worst * 1000:.0f} ms")
            self.assertLess(worst, 1.0 * sl.SLOW, "stalled connections delayed other clients")
            # the stalled connections are closed within the timeout (plus scheduling slack)
            for s, t_start, data in stalled:
                got = sl.read_until_close(s, timeout + 5 * sl.SLOW)
                took = time.monotonic() - t_start
                s.close()
                self.assertLess(took, timeout + 4 * sl.SLOW,
                                f"stalled connection ({data[:30]!r}) open after {took:.1f} s")
                if got:  # a 408 before closing is acceptable, any other answer is not
                    status, _, _ = sl.parse_raw_response(got)
                    self.assertEqual(status, 408, f"stalled {data[:30]!r} answered {got[:200]!r}")
            self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])
        finally:
            for s, _, _ in stalled:
                s.close()
            srv.kill()


class TestShutdown(ServerCase):
    """SIGTERM and SIGINT stop the server gracefully: requests in flight complete, exit 0."""

    def test_sigterm_with_requests_in_flight(self):
        tmp = state["tmp"]
        access_log = tmp.join("access.log")
        srv = sl.Server(state["db"], tmp.path, "--access-log", access_log, name="term")
        m = state["model"]
        failures, answered = [], [0]
        stop_at, t_signal = [None], [None]
        try:
            srv.start()
            idle = srv.client()  # an idle keep-alive connection must not hold the exit up
            self.expect(self.get(idle, "/healthz?probe=idle-marker"), 200)

            def worker(seed):
                c = srv.client(timeout=30)
                rng = random.Random(seed)
                while stop_at[0] is None or time.monotonic() < stop_at[0]:
                    user = rng.choice(m.users)
                    t_sent = time.monotonic()
                    try:
                        r = c.get(recs_path(user, k=1000))
                    except (http.client.HTTPException, OSError) as e:
                        # A request sent around the signal may find its connection closed (a
                        # client retries those); one sent well before it was in flight.
                        if t_signal[0] is None or t_sent < t_signal[0] - 0.2 * sl.SLOW:
                            failures.append(f"request sent before SIGTERM failed: {e!r}")
                        break
                    if r.status != 200:
                        failures.append(repr(r))
                        break
                    answered[0] += 1
                c.close()

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            # a request whose headers and half its body are in when SIGTERM comes
            body = b'{"user": "u1", "items": ["i1", "i2", "i3"]}'
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
            s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:20])
            time.sleep(0.5)
            t_signal[0] = time.monotonic()
            srv.send_signal(signal.SIGTERM)
            stop_at[0] = time.monotonic() + 0.5
            time.sleep(0.3)
            s.sendall(body[20:])
            data = sl.read_until_close(s, 10 * sl.SLOW)
            s.close()
            for t in threads:
                t.join(30 * sl.SLOW)
            self.assertTrue(data, "the request in flight at SIGTERM got no answer")
            status, headers, rbody = sl.parse_raw_response(data)
            self.assertEqual(status, 200, data[:300])
            SPEC.validate("/v1/score", "POST", status, rbody, headers.get("content-type"))
            scores = json.loads(rbody)["scores"]
            for item, sc in zip(["i1", "i2", "i3"], scores):
                self.assertTrue(sl.close_enough(sc, m.score("u1", item), TOL))
            self.assertFalse(failures, failures[:5])
            self.assertGreater(answered[0], 0)
            t0 = time.monotonic()
            rc = srv.stop(timeout=15 * sl.SLOW)
            sl.log(f"  exit {rc} {time.monotonic() - t0:.2f} s after the in-flight request; "
                   f"{answered[0]} recommendations answered meanwhile")
            self.assertEqual(rc, 0, srv.stderr()[-3000:])
            idle.close()
            with open(access_log, errors="replace") as f:
                text = f.read()
            lines = text.splitlines()
            # one line per request; the format is free, but each names the status
            self.assertGreaterEqual(len(lines), answered[0] + 2, "access log lacks requests")
            self.assertTrue(any(re.search(r"healthz.*\b200\b", x) for x in lines),
                            f"no line for GET /healthz 200: {lines[:3]}")
            self.assertTrue(any(re.search(r"score.*\b200\b", x) for x in lines),
                            f"no line for the in-flight POST /v1/score: {lines[-3:]}")
        finally:
            srv.kill()

    def test_sigterm_after_abandoned_requests(self):
        """Clients that send a top-K request and vanish (reset) while it is being scored must not
        hold the shutdown up: their suspended connections end without an answer."""
        srv = sl.Server(state["db"], state["tmp"].path, name="abandon")
        try:
            srv.start()
            request = b"GET " + recs_path("u1", k=1000).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            linger = struct.pack("ii", 1, 0)  # close with a reset, as a client that gives up

            def vanish(n):
                for _ in range(n):
                    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                        c.sendall(request)

            threads = [threading.Thread(target=vanish, args=(300,)) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60 * sl.SLOW)
            c = srv.client()
            self.expect(self.get(c, "/healthz"), 200)
            c.close()
            t0 = time.monotonic()
            rc = srv.stop(timeout=15 * sl.SLOW)
            sl.log(f"  exit {rc} {time.monotonic() - t0:.2f} s after SIGTERM")
            self.assertEqual(rc, 0, srv.stderr()[-2000:])
        finally:
            srv.kill()

    def test_sigint(self):
        srv = sl.Server(state["db"], state["tmp"].path, name="int")
        try:
            srv.start()
            c = srv.client()
            self.expect(self.get(c, recs_path("u1")), 200)
            c.close()
            self.assertEqual(srv.stop(signal.SIGINT), 0, srv.stderr()[-2000:])
        finally:
            srv.kill()


class TestCommandLine(unittest.TestCase):
    def test_help_lists_options(self):
        p = sl.subprocess.run([sl.BIN, "serve", "--help"], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout + p.stderr
        for flag in ("--db", "--listen", "--model", "--poll-ms", "--max-body", "--conn-timeout",
                     "--max-conns", "--threads", "--access-log"):
            self.assertIn(flag, text, f"serve --help does not mention {flag}")

    def test_usage_errors(self):
        db = state["db"]
        for args in ([], ["--db", db, "--bogus"], ["--db", db, "--listen", "nonsense"],
                     ["--db", db, "--max-body", "-5"], ["--db", db, "--poll-ms", "x"],
                     ["--db", db, "--threads", "0"], ["--db", db, "--conn-timeout", "-1"]):
            if "--listen" not in args:
                args = args + ["--listen", f"127.0.0.1:{sl.free_port()}"]
            cmd = [sl.BIN, "serve"] + args
            try:
                p = sl.subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=10 * sl.SLOW)
            except sl.subprocess.TimeoutExpired:
                self.fail(f"{' '.join(cmd)}: still running after {10 * sl.SLOW:.0f} s (an "
                          f"invalid command line should exit with a usage error)")
            self.assertNotEqual(p.returncode, 0, f"{' '.join(cmd)} exited 0")
            self.assertTrue(p.stderr.strip(), f"{' '.join(cmd)}: no message on stderr")


if __name__ == "__main__":
    sl.require_serve()
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    sl.log(f"test_server.py: {time.monotonic() - t0:.1f} s"
           f"{f' ({sl.SANITIZER} build)' if sl.SANITIZED else ''}")
    sys.exit(0 if prog.result.wasSuccessful() else 1)
