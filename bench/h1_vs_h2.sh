#!/bin/bash
# Per-request cost, h2c vs HTTP/1.1 keep-alive, same server, same load generator (h2load), 10 clients.
cd "$(dirname "$0")/.."
deno run -A bench/servers/h2_connctx.ts > /tmp/h2srv.out &
PID=$!
for i in $(seq 1 50); do grep -q READY /tmp/h2srv.out && break; sleep 0.1; done
PORT=$(awk '/READY/{print $2}' /tmp/h2srv.out)
for r in 1 2 3 4 5; do
  a=$(h2load --h1 -c10 -n100000 http://127.0.0.1:$PORT/ 2>/dev/null | awk '/finished in/{print $4}')
  b=$(h2load -c10 -m1 -n100000 http://127.0.0.1:$PORT/ 2>/dev/null | awk '/finished in/{print $4}')
  c=$(h2load -c10 -m10 -n100000 http://127.0.0.1:$PORT/ 2>/dev/null | awk '/finished in/{print $4}')
  echo "round $r: h1 $a  h2c(m1) $b  h2c(m10) $c req/s"
done
kill $PID
