#!/usr/bin/env bash
# Mininet vs simulator: client-server and swarm, N = 2, 4, 8, 16 at
# 20 Mbit/s with 20 MiB; writes docs/data/{mininet,sim}-{cs,swarm}.jsonl
# (sweep-style lines: {"point": {"peers.count": N}, "report": {...}}).
# As root, from the repository root, after `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${PEERLAB:-$PWD/target/debug/peerlab}
tmp=$(mktemp -d)
mkdir -p docs/data
for proto in cs swarm; do
    scen=lab-client-server
    [ "$proto" = swarm ] && scen=swarm-homogeneous
    for be in sim mininet; do : > "docs/data/$be-$proto.jsonl"; done
    for n in 2 4 8 16; do
        for be in sim mininet; do
            "$bin" run "$scen" --on "$be" --set peers.count=$n --set 'file.size=20 MiB' \
                --report "$tmp/$be-$proto-$n.json" --work-dir "$tmp/w-$be-$proto-$n" -q
            /usr/bin/python3 -c 'import json,sys; print(json.dumps({"point": {"peers.count": int(sys.argv[1])}, "report": json.load(open(sys.argv[2]))}, separators=(",", ":")))' \
                "$n" "$tmp/$be-$proto-$n.json" >> "docs/data/$be-$proto.jsonl"
        done
    done
done
rm -rf "$tmp"
