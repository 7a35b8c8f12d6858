#!/usr/bin/python3
"""End to end on real data: kgat trained on kgcn-music (the last.fm listening log and its
knowledge graph, ../shared/data/kgcn-music), published, served; the top-K of sampled users and,
for each recommended item, an explanation whose every path runs over edges that exist in the
input files (interactions.txt's (user, item) pairs, kg_final.txt's triples, "~r" a triple walked
backwards), and among them knowledge-graph paths through an entity.

Skipped (exit 77) without the data or without `serve`.
Run: GNNREC_BIN=build/gnnrec GNNREC_DATA=../shared/data /usr/bin/python3 tests/test_explain.py
"""
import os
import random
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

DATA = os.path.join(os.environ.get("GNNREC_DATA", ""), "kgcn-music")


class ExplainKgcnMusic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = sl.TempDir("gnnrec-explain-")
        cls.db = cls.tmp.join("store.sqlite")
        log, kg = os.path.join(DATA, "interactions.txt"), os.path.join(DATA, "kg_final.txt")
        subprocess.run([sl.BIN, "train", "--model", "kgat", "--train", log, "--kg", kg,
                        "--epochs", "2", "--threads", "2", "--quiet", "--db", cls.db],
                       check=True, capture_output=True, timeout=600 * sl.SLOW)
        with open(log) as f:
            cls.pairs = {tuple(line.split()[:2]) for line in f}
        with open(kg) as f:
            cls.triples = {tuple(line.split()) for line in f}
        cls.server = sl.Server(cls.db, cls.tmp.path).start()
        cls.client = cls.server.client()
        cls.spec = sl.OpenAPI()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.tmp.close()

    def get(self, path):
        r = self.client.request("GET", path)
        self.spec.validate_response(r)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def hop_exists(self, a, rel, b):
        if rel == "interact":
            return (a, b) in self.pairs
        if rel == "interacted_by":
            return (b, a) in self.pairs
        if rel.startswith("~"):
            return (b, rel[1:], a) in self.triples
        return (a, rel, b) in self.triples

    def test_top_k_and_explanations(self):
        users = random.Random(8).sample(sorted({u for u, _ in self.pairs}), 40)
        explained = through_entity = 0
        for u in users:
            top = self.get(f"/v1/users/{u}/recommendations?k=5")["items"]
            self.assertEqual(len(top), 5)
            for item in (e["item"] for e in top):
                self.assertNotIn((u, item), self.pairs)  # seen items are excluded
                out = self.get(f"/v1/users/{u}/recommendations/{item}/explain?k=20")
                explained += bool(out["paths"])
                for p in out["paths"]:
                    ids = [n["id"] for n in p["nodes"]]
                    self.assertEqual((ids[0], ids[-1]), (u, item))
                    for a, rel, b in zip(ids, p["relations"], ids[1:]):
                        self.assertTrue(self.hop_exists(a, rel, b), f"{u} -> {item}: {p}")
                    through_entity += any(n["type"] == "entity" for n in p["nodes"])
        print(f"explained {explained} of 200, {through_entity} paths through an entity")
        self.assertGreater(explained, 100)  # of 200 recommendations
        self.assertGreater(through_entity, 0)


if __name__ == "__main__":
    if not os.path.isfile(os.path.join(DATA, "kg_final.txt")):
        print(f"SKIP: no {DATA} (set GNNREC_DATA)")
        sys.exit(sl.SKIP)
    sl.require_serve()
    unittest.main(verbosity=2)
