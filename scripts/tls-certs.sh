#!/usr/bin/env bash
# Makes a private CA and certificates for a local fencelock cluster with the
# openssl command (docs/security.md, "Setting it up").
#
#   scripts/tls-certs.sh DIR node ID...      a CA (once) and a certificate per node
#   scripts/tls-certs.sh DIR client NAME...  a CA (once) and a client certificate per name
#
# DIR/ca.crt and DIR/ca.key are made on first use and reused after. A node's
# certificate (DIR/nID.crt, DIR/nID.key) names the member the way fencelockd
# checks it: DNS fencelock-node-ID, plus IP 127.0.0.1 and DNS localhost for
# clients that dial it on this machine. A client's (DIR/NAME.crt,
# DIR/NAME.key) has NAME as its common name, its principal under
# --client-auth cert. Keys are EC P-256; certificates last 825 days
# (FENCELOCK_TLS_DAYS overrides it; tests make expired ones with 0). An
# existing certificate is kept.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: scripts/tls-certs.sh DIR node ID... | DIR client NAME..." >&2; exit 2; }
dir=$1
kind=$2
shift 2
command -v openssl >/dev/null || { echo "tls-certs.sh: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
days=${FENCELOCK_TLS_DAYS:-825}

if [ ! -f "$dir/ca.crt" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=fencelock local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt" 2>/dev/null
  chmod 600 "$dir/ca.key"
fi

# issue NAME CN SAN EXTENDED_KEY_USAGE
issue() {
  local name=$1 cn=$2 san=$3 eku=$4
  [ -f "$dir/$name.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key" 2>/dev/null
  chmod 600 "$dir/$name.key"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" 2>/dev/null |
    openssl x509 -req -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -sha256 \
      -days "$days" -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext"
}

case "$kind" in
  node)
    for id in "$@"; do
      [[ "$id" =~ ^[0-9]+$ ]] || { echo "tls-certs.sh: node id '$id' is not a number" >&2; exit 2; }
      issue "n$id" "fencelock-node-$id" "DNS:fencelock-node-$id,DNS:localhost,IP:127.0.0.1" \
        "serverAuth,clientAuth"
    done
    ;;
  client)
    for name in "$@"; do
      [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "tls-certs.sh: client name '$name' must be [A-Za-z0-9._-]" >&2; exit 2; }
      issue "$name" "$name" "" "clientAuth"
    done
    ;;
  *)
    echo "tls-certs.sh: the kind is node or client, not '$kind'" >&2
    exit 2
    ;;
esac
