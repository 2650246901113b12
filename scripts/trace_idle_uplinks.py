#!/usr/bin/env python3
"""Why are uplinks idle early in a swarm? Reads a simulator trace and, at a
few instants, counts the peers that sent nothing in the last 50 ms and why.

    peerlab run swarm-homogeneous --set peers.count=128 \
        --set swarm.super_seed=true --set swarm.serial_uploads=true \
        --set 'swarm.rechoke_interval=500 ms' --trace t.jsonl -q
    scripts/trace_idle_uplinks.py t.jsonl [1.5 2 2.5 3]

For each idle peer p and each neighbour q that p has unchoked and that lacks a
piece p holds, it tells whether q has that piece's remaining blocks requested
from someone else. docs/swarm.md ("What is left at N = 128") quotes it.
The trace's detail fields are Rust Debug text; the patterns below follow
core's `Message` and `Event` formats.
"""
import json
import re
import sys
from collections import defaultdict

path = sys.argv[1]
checkpoints = [float(x) for x in sys.argv[2:]] or [1.5, 2.0, 2.5, 3.0]
conn = defaultdict(set)      # node -> open connections
have = defaultdict(set)      # node -> verified pieces
unchoked = defaultdict(set)  # node -> neighbours it has unchoked
asked = defaultdict(dict)    # node -> {(piece, offset): neighbour asked}
last_sent = {}               # node -> time its last block left its uplink
peers = set()                # every node but the tracker


def report(t):
    idle = []
    why = {"unchoked nobody": 0, "no unchoked neighbour lacks its pieces": 0,
           "an unchoked neighbour lacks one": 0}
    held_elsewhere = asked_from_it = not_asked = 0
    for p in sorted(peers):
        if last_sent.get(p, -1.0) > t - 0.05:
            continue
        idle.append(p)
        qs = [q for q in unchoked[p] if q in conn[p]]
        lacking = [(q, x) for q in qs for x in have[p] - have[q]]
        if not qs:
            why["unchoked nobody"] += 1
        elif not lacking:
            why["no unchoked neighbour lacks its pieces"] += 1
        else:
            why["an unchoked neighbour lacks one"] += 1
        for q, x in lacking:
            holders = {u for (piece, _), u in asked[q].items() if piece == x}
            if p in holders:
                asked_from_it += 1
            elif holders:
                held_elsewhere += 1
            else:
                not_asked += 1
    print(f"t = {t} s: {len(idle)} of {len(peers)} uplinks (peers and server) sent nothing "
          f"in the last 50 ms; {why}")
    print(f"  (idle peer, unchoked neighbour, piece it lacks): requested from another uploader "
          f"{held_elsewhere}, from the idle peer {asked_from_it}, not requested {not_asked}")


with open(path) as f:
    next(f)  # the header: scenario and versions
    i = 0
    for line in f:
        r = json.loads(line)
        t, kind, d, n = r["t"] / 1e9, r["kind"], r["detail"], r["node"]
        while i < len(checkpoints) and t >= checkpoints[i]:
            report(checkpoints[i])
            i += 1
        if i == len(checkpoints):
            break
        if kind == "start":
            peers.add(n)
        elif kind == "connection":
            q, ev = re.match(r"\((\d+), (\w+)\)", d).groups()
            if ev == "Opened":
                conn[n].add(int(q))
            else:
                conn[n].discard(int(q))
                unchoked[n].discard(int(q))
        elif kind == "event" and d.startswith("PieceVerified"):
            have[n].add(int(re.search(r"piece: (\d+)", d).group(1)))
        elif kind == "sent":
            last_sent[n] = t
        elif kind == "deliver":
            frm, msg = re.match(r"\((\d+), (\w+)", d).groups()
            frm = int(frm)
            if msg == "Announce":
                peers.discard(n)  # n is the tracker
            elif msg == "Unchoke":
                unchoked[frm].add(n)
            elif msg == "Choke":
                unchoked[frm].discard(n)
            elif msg in ("Request", "Cancel", "Block"):
                b = re.search(r"piece: (\d+), offset: (\d+)", d)
                key = (int(b.group(1)), int(b.group(2)))
                if msg == "Request":
                    asked[frm][key] = n       # frm asked n
                elif msg == "Cancel":
                    asked[frm].pop(key, None)
                else:
                    asked[n].pop(key, None)   # n got the block from frm
