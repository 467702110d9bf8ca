#!/usr/bin/env bash
# Sets up (scripts/setup.sh), starts a local mesh, deploys the sample apps meshed,
# and shows real requests going through the sidecars. The mesh stays up afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the local mesh (one cluster, 'local')"
isthmus up

step "Deploying the sample apps with Envoy sidecars (examples/demo.yaml)"
isthmus apply -f examples/demo.yaml --wait
isthmus get pods -o wide
isthmus get services

client=$(isthmus get pods -o json | python -c 'import json,sys; print(next(p["name"] for p in json.load(sys.stdin)["items"] if p["deployment"] == "client" and p["phase"] == "Running"))')

step "From inside pod $client: curl http://web/ (resolved by cluster DNS, carried by the sidecars)"
isthmus exec "$client" -- curl -sS http://web/
echo

step "200 requests/s for 5 s to http://web/ from the client pod: spread across the 3 replicas"
isthmus exec "$client" -- python -m isthmus.apps.loadgen http://web/ --rate 200 --duration 5 || true

step "gRPC through the mesh: a unary call and a server stream"
isthmus exec "$client" -- python -m isthmus.apps.grpc_client echo-grpc:9090 --say "hello over HTTP/2"
isthmus exec "$client" -- python -m isthmus.apps.grpc_client echo-grpc:9090 --count 3

step "Opaque TCP through the mesh"
isthmus exec "$client" -- python -m isthmus.apps.tcp_client echo-tcp 7070 --send "hello over TCP"

step "Every hop is mutual TLS: the web app is told the caller's verified SPIFFE identity"
isthmus exec "$client" -- curl -sS http://web/ | python -c 'import json,sys; h=json.load(sys.stdin)["headers"]; print("x-isthmus-client-id:", h["x-isthmus-client-id"])'
isthmus identity show "$client"

step "Health of the mesh"
isthmus check

cat <<EOT

The mesh is still running. Things to try:
  export PATH=\$PWD/.venv/bin:\$PATH
  isthmus get pods -o wide                        # who runs where
  isthmus exec $client -- curl -s http://web/     # act from inside the mesh
  isthmus scale deployment web --replicas 5       # and watch traffic spread
  isthmus logs --proxy $client                    # a sidecar's log
  isthmus check                                   # is everything connected and ACKed?
Stop it with:  .venv/bin/isthmus down    (add --purge to forget its state)
EOT
