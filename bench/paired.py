"""One run of one checkout's consumer on a fresh stream, for A/B timing of two trees.

    python bench/paired.py TREE PORT OUT [--count 100] [--total 200000] [--consumer streamboot]

Fills a fresh stream on the redis-server at 127.0.0.1:PORT, runs ``TREE/bench/consumers.py``
with ``TREE/.venv/bin/python`` on it and appends the consumer's JSON line (with the tree)
to OUT. Alternating two trees (A B A B …) pairs the runs, so a machine
whose speed drifts still gives a fair comparison (docs/performance.md, "What the
redesign of issue 13 cost").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import uuid

import redis
from run import prefill


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree")
    parser.add_argument("port")
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--total", type=int, default=200_000)
    parser.add_argument("--consumer", default="streamboot")
    args = parser.parse_args()
    url = f"redis://127.0.0.1:{args.port}/0"
    client = redis.Redis.from_url(url)
    stream = f"paired-{uuid.uuid4().hex[:8]}"
    prefill(client, stream, args.total)
    try:
        done = subprocess.run(
            [f"{args.tree}/.venv/bin/python", f"{args.tree}/bench/consumers.py", args.consumer,
             "--url", url, "--stream", stream, "--group", "g", "--count", str(args.count),
             "--total", str(args.total)], capture_output=True, text=True, check=True)
    finally:
        client.delete(stream)
    with open(args.out, "a") as out:
        out.write(json.dumps({"tree": args.tree, **json.loads(done.stdout.splitlines()[-1])})
                  + "\n")


if __name__ == "__main__":
    main()
