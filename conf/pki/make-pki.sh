#!/usr/bin/env bash
# Makes a small PKI for certificate authentication with strongSwan's `pki` tool (Debian
# package strongswan-pki): one root CA, one intermediate CA, and a certificate for each gateway
# named on the command line, laid out as ironsecd's ca_dir / crl_dir / local_cert / local_key
# want it (README, "Certificates"):
#
#   DIR/cacerts/root.pem        the trust anchor: every gateway's ca_dir
#   DIR/crls/root.crl.pem       the CAs' CRLs (empty at first): every gateway's crl_dir
#   DIR/crls/int.crl.pem
#   DIR/certs/NAME.pem          NAME's certificate followed by the intermediate: its local_cert
#   DIR/private/NAME.key        NAME's private key (0600): its local_key
#   DIR/ca/root.key, int.key, int.pem   the CA keys (0600): keep them OFF the gateways
#
#   conf/pki/make-pki.sh DIR [--type ecdsa|rsa] [--org "C=CH, O=Example"] [--ca-name "Example"] [--days N] NAME...
#
# NAME is the gateway's FQDN: the certificate's subject is "ORG, CN=NAME" and its
# subjectAltName NAME, so either can be its local_id. Revoke one later with
#   pki --signcrl --cacert DIR/ca/int.pem --cakey DIR/ca/int.key --cert CERT.pem \
#       --lastcrl DIR/crls/int.crl.pem --outform pem > new.crl && mv new.crl DIR/crls/int.crl.pem
# and copy the CRL to every gateway's crl_dir (ironsecctl reload picks it up).
#
# --example marks each private key as a shipped example (ironsecd refuses to run with it and
# `ironsecd check` warns): that is how conf/pki/ was made (conf/pki/make-pki.sh conf/pki
# --example gw-a.example gw-b.example, CA keys then deleted).
set -euo pipefail
usage() { echo "usage: $0 DIR [--type ecdsa|rsa] [--org DN] [--ca-name CN] [--days N] [--example] NAME..." >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1
shift
type=ecdsa org="C=CH, O=ironsec test" caname=ironsec days=1095 example=0 names=()
while [ $# -gt 0 ]; do
    case $1 in
        --type) type=$2; shift 2 ;;
        --org) org=$2; shift 2 ;;
        --ca-name) caname=$2; shift 2 ;;
        --days) days=$2; shift 2 ;;
        --example) example=1; shift ;;
        -*) usage ;;
        *) names+=("$1"); shift ;;
    esac
done
[ "${#names[@]}" -gt 0 ] || usage
case $type in
    ecdsa) gen=(--type ecdsa --size 256) ;;
    rsa) gen=(--type rsa --size 3072) ;;
    *) usage ;;
esac
command -v pki > /dev/null || { echo "$0: needs strongSwan's pki (apt-get install strongswan-pki)" >&2; exit 1; }
# Only the plugins pki needs (the Debian default also tries TPM and PKCS#11).
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf 'pki {\n    load = random openssl gmp sha1 sha2 pem pkcs1 pkcs8 x509 pubkey\n}\n' > "$conf"
export STRONGSWAN_CONF=$conf
umask 077
mkdir -p "$dir"/{ca,cacerts,crls,certs,private}
key() { # FILE: a new private key, PEM, 0600
    pki --gen "${gen[@]}" --outform pem > "$1"
}
# CAs: ten years (the root) and a little less (the intermediate), made once per DIR.
if [ ! -e "$dir/ca/root.key" ]; then
    key "$dir/ca/root.key"
    pki --self --in "$dir/ca/root.key" --ca --lifetime 3650 --dn "$org, CN=$caname root CA" \
        --outform pem > "$dir/cacerts/root.pem"
    key "$dir/ca/int.key"
    pki --issue --in "$dir/ca/int.key" --type priv --cacert "$dir/cacerts/root.pem" --cakey "$dir/ca/root.key" \
        --ca --lifetime 3600 --dn "$org, CN=$caname intermediate CA" \
        --outform pem > "$dir/ca/int.pem"
    # Empty CRLs for both CAs (a peer with strict revocation checking wants one for each).
    pki --signcrl --cacert "$dir/cacerts/root.pem" --cakey "$dir/ca/root.key" --lifetime 3600 \
        --outform pem > "$dir/crls/root.crl.pem"
    pki --signcrl --cacert "$dir/ca/int.pem" --cakey "$dir/ca/int.key" --lifetime 3600 \
        --outform pem > "$dir/crls/int.crl.pem"
fi
for n in "${names[@]}"; do
    key "$dir/private/$n.key.new"
    if [ "$example" = 1 ]; then
        { echo "# $n: ironsec-example-secret-not-for-use (conf/pki/make-pki.sh --example):"
          echo "# everyone has this key; ironsecd refuses to run with it."
          cat "$dir/private/$n.key.new"; } > "$dir/private/$n.key"
        rm "$dir/private/$n.key.new"
    else
        mv "$dir/private/$n.key.new" "$dir/private/$n.key"
    fi
    pki --issue --in "$dir/private/$n.key" --type priv --cacert "$dir/ca/int.pem" --cakey "$dir/ca/int.key" \
        --lifetime "$days" --dn "$org, CN=$n" --san "$n" --outform pem > "$dir/certs/$n.ee.pem"
    cat "$dir/certs/$n.ee.pem" "$dir/ca/int.pem" > "$dir/certs/$n.pem"
    rm "$dir/certs/$n.ee.pem"
    chmod 644 "$dir/certs/$n.pem"
done
chmod 644 "$dir"/cacerts/*.pem "$dir"/crls/*.pem
chmod 755 "$dir"/{cacerts,crls,certs}
echo "$dir: root and intermediate CA in $dir/ca (keep these keys off the gateways); ${names[*]} in $dir/certs and $dir/private"
