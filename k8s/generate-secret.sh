#!/usr/bin/env bash
# Prints a Secret manifest "chatons-cloud-secrets" with freshly generated values for every key
# the manifests use (see docs/DEPLOY.md). Nothing is written to disk; redirect it yourself:
#   k8s/generate-secret.sh > /tmp/chatons-secrets.yaml && kubectl apply -f /tmp/chatons-secrets.yaml && shred -u /tmp/chatons-secrets.yaml
# Optional environment: NAMESPACE (chatons-cloud), SMTP_USER and SMTP_PASS (left out when unset).
# Needs openssl.
set -euo pipefail
command -v openssl >/dev/null || { echo "generate-secret.sh: openssl is required" >&2; exit 1; }
ns=${NAMESPACE:-chatons-cloud}
pg_password=$(openssl rand -hex 24)
app_password=$(openssl rand -hex 24)
redis_password=$(openssl rand -hex 24)
service_token=$(openssl rand -hex 32)
encryption_key=$(openssl rand -base64 32)
sealing_key=$(openssl rand -base64 32)
jwt_key=$(openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null)
cat <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: chatons-cloud-secrets
  namespace: $ns
type: Opaque
stringData:
  POSTGRES_PASSWORD: "$pg_password"
  DATABASE_ADMIN_URL: "postgres://chatons:$pg_password@postgres:5432/chatons"
  DATABASE_URL: "postgres://chatons_app:$app_password@postgres:5432/chatons?sslmode=prefer"
  REDIS_PASSWORD: "$redis_password"
  REDIS_URL: "redis://:$redis_password@redis:6379/0"
  CHATONS_INTERNAL_SERVICE_TOKEN: "$service_token"
  CHATONS_SECRETS_ENCRYPTION_KEY: "$encryption_key"
  CHATONS_RUNTIME_SEALING_KEY: "$sealing_key"
  # Set only while rotating the key above (docs/OPERATIONS.md).
  CHATONS_RUNTIME_SEALING_PREVIOUS_KEYS: ""
  # Set only while rotating the key above (docs/OPERATIONS.md).
  CHATONS_SECRETS_PREVIOUS_KEYS: ""
  JWT_SIGNING_KEY: |
$(printf '%s\n' "$jwt_key" | sed 's/^/    /')
YAML
if [ -n "${SMTP_USER:-}" ]; then printf '  SMTP_USER: "%s"\n' "$SMTP_USER"; fi
if [ -n "${SMTP_PASS:-}" ]; then printf '  SMTP_PASS: "%s"\n' "$SMTP_PASS"; fi
