"""People (RUDOLPH_PEOPLE=on): "faces like this one" and clustering a new face, at N faces.

    .venv/bin/python bench/people.py [--sizes 10000] [--queries 200] [--new 50]

Starts its own moto (DynamoDB) and OpenSearch 2.5.0 (k-NN plugin) on free ports of 127.0.0.1,
creates the table and the face index (`ensure`, as `rudolph init` does), and bulk-loads
synthetic faces (seeded): one person per 10 faces, a person a random point (per-dimension sd
0.06: persons ~0.95 apart), its faces that point plus noise (sd 0.015: ~0.24 apart, as real
photos of one person measure). Each person has its item in the table. Then, per size:

- similar: `FaceIndex.nearest` (k=10) for `--queries` faces of the index, from this process
  (the HTTP request and the server's k-NN search), p50/p95/max ms;
- cluster: `People.index_record` of `--new` one-face records, half of a known person, half of
  a new one (the read of the assignment, the k-NN query, the conditional writes, the face
  document written and refreshed; a new person queries and merges once more), ms per face.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rudolph.index.faces import FaceDoc, FaceIndex
from rudolph.models.faceid import encode
from rudolph.people import People
from rudolph.peoplestore import PeopleStore
from rudolph.record import Box, Face, Record
from rudolph.settings import Settings
from rudolph.store import RecordStore
from tests.servers import moto_server, opensearch_server

BOX = Box(left=0.4, top=0.3, width=0.2, height=0.25)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f}  p95 {p95:.1f}  max {ordered[-1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--new", type=int, default=50)
    args = parser.parse_args()
    # moto takes any credentials; never real AWS (every client is given moto's endpoint).
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(variable, "bench")
    rng = np.random.default_rng(17)
    with moto_server() as moto, opensearch_server() as search:
        name = uuid.uuid4().hex[:8]
        settings = Settings(
            aws_endpoint_url=moto,
            opensearch_url=search,
            table=f"bench-{name}",
            index=f"bench-{name}",
            bucket=f"bench-{name}",
            people="on",
        )
        RecordStore(settings).ensure()
        FaceIndex(settings).ensure()
        faces, store = FaceIndex(settings), PeopleStore(settings)
        centres = np.zeros((0, 128), np.float32)
        loaded = 0
        for size in sorted(int(s) for s in args.sizes.split(",")):
            persons = size // 10 - len(centres)
            new = rng.normal(0, 0.06, (persons, 128)).astype(np.float32)
            started = time.perf_counter()
            for p in range(len(centres), len(centres) + persons):
                store.create_person(f"p{p:015x}")
            centres = np.vstack([centres, new])
            docs = []
            for i in range(loaded, size):
                vector = centres[i // 10] + rng.normal(0, 0.015, 128)
                docs.append(FaceDoc(f"i{i:063x}", 0, BOX, f"p{i // 10:015x}", list(vector)))
            for start in range(0, len(docs), 500):
                faces.put(docs[start : start + 500])
            faces.refresh()
            loaded = size
            print(f"{size} faces: loaded in {time.perf_counter() - started:.0f} s")

            timings = []
            for _ in range(args.queries):
                wanted = centres[rng.integers(len(centres))] + rng.normal(0, 0.015, 128)
                started = time.perf_counter()
                faces.nearest(wanted, k=10)
                timings.append((time.perf_counter() - started) * 1000)
            print(f"  similar (k=10): {percentiles(timings)}")

            people = People(settings, store=store, faces=faces)
            timings = []
            for n in range(args.new):
                known = n % 2 == 0
                centre = centres[rng.integers(len(centres))] if known else rng.normal(0, 0.06, 128)
                vector = centre + rng.normal(0, 0.015, 128)
                face = Face(confidence=99.0, box=BOX, embedding=encode(vector))
                record = Record(image_id=f"n{size}-{n}".ljust(64, "0"), status="done", faces=[face])
                started = time.perf_counter()
                people.index_record(record, "s1")
                timings.append((time.perf_counter() - started) * 1000)
            print(f"  cluster a new face: {percentiles(timings)}")


if __name__ == "__main__":
    main()
