#!/usr/bin/env bash
# Builds every service's image from deploy/Dockerfile as shop/<service>:dev, the tag the
# manifests name with imagePullPolicy IfNotPresent, and loads it into the kind cluster's node,
# so that nothing is pulled from a registry. KIND_CLUSTER names the cluster (default: shop).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER="${KIND_CLUSTER:-shop}"
SERVICES=(gateway user inventory order payment notify analytics shipping)
for service in "${SERVICES[@]}"; do
  docker build -f deploy/Dockerfile --build-arg SERVICE="$service" -t "shop/$service:dev" .
  kind load docker-image "shop/$service:dev" --name "$CLUSTER"
done
