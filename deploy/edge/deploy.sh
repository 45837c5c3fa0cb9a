#!/usr/bin/env bash
# Deploys the edge worker (edge/, wrangler.toml) to Cloudflare, from nothing or
# over an earlier deploy. See docs/deploy.md ("The edge").
#
#   deploy/edge/deploy.sh              create what is missing, write the deploy config, deploy
#   deploy/edge/deploy.sh --dry-run    write the deploy config and run `wrangler deploy --dry-run`
#                                      with it; creates nothing, needs no account or network
#
# A real run needs CLOUDFLARE_API_TOKEN (an API token with edit rights on Workers
# Scripts, Workers KV Storage, Workers R2 Storage and Queues for the account; plus
# Workers Routes on the zone when EDGE_DOMAIN is set) and, when the token sees more
# than one account, CLOUDFLARE_ACCOUNT_ID.
#
# Steps (each command is printed before it runs, secrets never are):
#   1. KV namespaces for API_KEYS, RESULTS, ORIGIN_STATE: looked up by title
#      (`wrangler kv namespace list`, JSON) and created only when missing
#      (title "<KV_TITLE_PREFIX><binding>", default prefix "imagereward-edge-").
#   2. Queues imagereward-jobs and imagereward-jobs-dlq and the R2 bucket
#      imagereward-job-blobs (names read from wrangler.toml): `wrangler queues info` /
#      `wrangler r2 bucket info` say whether each exists; created only when missing.
#   3. The deploy config (DEPLOY_CONFIG, default deploy/edge/wrangler.production.toml):
#      the repository's wrangler.toml with the real KV ids, `main` relative to the
#      config's folder and, with EDGE_DOMAIN, a custom-domain route. The root
#      wrangler.toml is never modified (it stays the `wrangler dev` / test config).
#   4. `wrangler deploy --config <deploy config> --var ORIGINS:$ORIGINS
#      [--secrets-file <temp file>]`: ORIGIN_SECRET and ADMIN_SECRET are uploaded with
#      the deployment itself (so no version runs without them), from a mode-600 temp
#      file that is deleted on exit.
#
# Environment:
#   ORIGINS            required for a real run: comma-separated GPU service base URLs,
#                      one per `imagereward serve` process (https://gpu-1.example.com:8443,…)
#   ORIGIN_SECRET      the GPU services' API key (what they accept as Bearer)
#   ADMIN_SECRET       protects the edge's /admin/* (used by `imagereward keys`)
#                      Either secret unset: prompted for when stdin is a terminal (an
#                      empty answer keeps the value already deployed); otherwise the
#                      deployed value is kept (secrets survive deployments).
#   EDGE_DOMAIN        optional custom domain for the worker (api.example.com; its zone
#                      must be on this account): the Cache API tier only runs there, not
#                      on *.workers.dev
#   KV_TITLE_PREFIX    title prefix of the KV namespaces (default "<worker name>-")
#   KV_ID_API_KEYS, KV_ID_RESULTS, KV_ID_ORIGIN_STATE
#                      use these namespace ids as they are (no lookup, no creation)
#   DEPLOY_CONFIG      where the deploy config is written
#   WRANGLER           the wrangler command (default: the repository's
#                      node_modules/.bin/wrangler, else `npx --no-install wrangler`)
#   DRY_RUN_OUTDIR     --dry-run only: where wrangler writes the bundle (default: a temp dir)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

DRY_RUN=0
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown argument \"$1\" (--dry-run, --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'deploy.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
# Prints a command (shell-quoted) on stderr, then runs it.
run() {
  local quoted
  quoted="$(printf '%q ' "$@")"
  printf '+ %s\n' "${quoted% }" >&2
  "$@"
}

SRC_CONFIG="$ROOT/wrangler.toml"
DEPLOY_CONFIG="${DEPLOY_CONFIG:-$ROOT/deploy/edge/wrangler.production.toml}"
KV_BINDINGS=(API_KEYS RESULTS ORIGIN_STATE)

command -v node >/dev/null || die "node is needed (Node >= 20.9)"
[ -f "$SRC_CONFIG" ] || die "$SRC_CONFIG is missing"

if [ -n "${WRANGLER:-}" ]; then
  read -r -a WRANGLER_CMD <<<"$WRANGLER"
elif [ -x "$ROOT/node_modules/.bin/wrangler" ]; then
  WRANGLER_CMD=("$ROOT/node_modules/.bin/wrangler")
else
  WRANGLER_CMD=(npx --no-install wrangler)
fi
wrangler() { run "${WRANGLER_CMD[@]}" "$@"; }
# Printed like every command, its output hidden: only the exit status matters (0 = it exists).
wrangler_probe() {
  local quoted
  quoted="$(printf '%q ' "${WRANGLER_CMD[@]}" "$@")"
  printf '+ %s >/dev/null 2>&1\n' "${quoted% }" >&2
  "${WRANGLER_CMD[@]}" "$@" >/dev/null 2>&1
}

# ---- names from wrangler.toml ------------------------------------------------------
toml_value() { # first `key = "value"` in wrangler.toml
  sed -n -E "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"([^\"]*)\".*/\1/p" "$SRC_CONFIG" | head -n 1
}
WORKER_NAME="$(toml_value name)"
[ -n "$WORKER_NAME" ] || die "no name = \"…\" in $SRC_CONFIG"
JOB_QUEUE="$(toml_value queue)"
DLQ="$(toml_value dead_letter_queue)"
BUCKET="$(toml_value bucket_name)"
[ -n "$JOB_QUEUE" ] && [ -n "$DLQ" ] && [ -n "$BUCKET" ] || die "queue / dead_letter_queue / bucket_name not found in $SRC_CONFIG"
KV_TITLE_PREFIX="${KV_TITLE_PREFIX-$WORKER_NAME-}"

# ---- checks --------------------------------------------------------------------------
ORIGINS="${ORIGINS:-}"
if [ -z "$ORIGINS" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    say "ORIGINS is unset: the dry run deploys with an empty pool (every score call would answer 503)"
  else
    die "set ORIGINS to the GPU services' base URLs, comma-separated (one per imagereward serve process)"
  fi
fi
IFS=',' read -r -a origin_list <<<"$ORIGINS"
for o in "${origin_list[@]}"; do
  o="${o//[[:space:]]/}"
  [ -z "$o" ] && continue
  case "$o" in
    https://*) ;;
    http://*) say "warning: $o is plain http: the origin secret and the images would cross the internet unencrypted (put TLS in front of the GPU service, docs/deploy.md)" ;;
    *) die "ORIGINS entry \"$o\" must start with https:// (or http://)" ;;
  esac
done
if [ "$DRY_RUN" = 0 ] && [ -z "${CLOUDFLARE_API_TOKEN:-}" ]; then
  die "CLOUDFLARE_API_TOKEN is not set (a real deploy needs it; --dry-run does not)"
fi

# ---- 1. KV namespaces ----------------------------------------------------------------
declare -A KV_ID=()
for b in "${KV_BINDINGS[@]}"; do
  var="KV_ID_$b"
  if [ -n "${!var:-}" ]; then KV_ID[$b]="${!var}"; fi
done

# Prints the id of the namespace titled $2 from the JSON list in $1 (empty if none).
kv_id_by_title() {
  node -e '
    const list = JSON.parse(process.argv[1]);
    const hit = list.find((n) => n.title === process.argv[2]);
    process.stdout.write(hit ? hit.id : "");
  ' "$1" "$2"
}
kv_list_json() {
  local out
  out="$(wrangler kv namespace list)" || die "wrangler kv namespace list failed"
  # The JSON array is the whole output (no banner), but be lenient about leading lines.
  printf '%s' "$out" | sed -n '/^\[/,$p'
}

if [ "$DRY_RUN" = 1 ]; then
  for b in "${KV_BINDINGS[@]}"; do
    if [ -z "${KV_ID[$b]:-}" ]; then
      say "dry run: KV namespace ${KV_TITLE_PREFIX}$b is not looked up; keeping wrangler.toml's placeholder id"
    fi
  done
else
  missing=()
  for b in "${KV_BINDINGS[@]}"; do [ -n "${KV_ID[$b]:-}" ] || missing+=("$b"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    list="$(kv_list_json)"
    for b in "${missing[@]}"; do
      title="${KV_TITLE_PREFIX}$b"
      id="$(kv_id_by_title "$list" "$title")"
      if [ -n "$id" ]; then
        say "KV namespace $title exists ($id)"
      else
        wrangler kv namespace create "$title"
        list="$(kv_list_json)"
        id="$(kv_id_by_title "$list" "$title")"
        [ -n "$id" ] || die "created KV namespace $title but cannot find its id in wrangler kv namespace list"
        say "KV namespace $title created ($id)"
      fi
      KV_ID[$b]="$id"
    done
  fi
fi

# ---- 2. queues and the R2 bucket -----------------------------------------------------
if [ "$DRY_RUN" = 1 ]; then
  say "dry run: not checking or creating queues $JOB_QUEUE, $DLQ or R2 bucket $BUCKET"
else
  for q in "$JOB_QUEUE" "$DLQ"; do
    if wrangler_probe queues info "$q"; then
      say "queue $q exists"
    else
      wrangler queues create "$q"
    fi
  done
  if wrangler_probe r2 bucket info "$BUCKET"; then
    say "R2 bucket $BUCKET exists"
  else
    wrangler r2 bucket create "$BUCKET"
  fi
fi

# ---- 3. the deploy config -------------------------------------------------------------
mkdir -p "$(dirname "$DEPLOY_CONFIG")"
DEPLOY_CONFIG="$(cd "$(dirname "$DEPLOY_CONFIG")" && pwd)/$(basename "$DEPLOY_CONFIG")"
MAIN_REL="$(node -e 'const p = require("node:path"); process.stdout.write(p.relative(p.dirname(process.argv[1]), process.argv[2]).split(p.sep).join("/"))' "$DEPLOY_CONFIG" "$ROOT/$(toml_value main)")"
kv_pairs=""
for b in "${KV_BINDINGS[@]}"; do
  if [ -n "${KV_ID[$b]:-}" ]; then
    [[ "${KV_ID[$b]}" =~ ^[A-Za-z0-9]+$ ]] || die "KV id for $b (\"${KV_ID[$b]}\") is not a plain id"
    kv_pairs+="$b=${KV_ID[$b]} "
  fi
done
EDGE_DOMAIN="${EDGE_DOMAIN:-}"
if [ -n "$EDGE_DOMAIN" ] && ! [[ "$EDGE_DOMAIN" =~ ^[A-Za-z0-9.-]+$ ]]; then
  die "EDGE_DOMAIN must be a host name like api.example.com (got \"$EDGE_DOMAIN\")"
fi
say "writing $DEPLOY_CONFIG"
tmp_config="$DEPLOY_CONFIG.tmp.$$"
awk -v main_rel="$MAIN_REL" -v kv="$kv_pairs" -v domain="$EDGE_DOMAIN" '
  BEGIN {
    n = split(kv, pairs, " ")
    for (i = 1; i <= n; i++) { split(pairs[i], kvp, "="); ids[kvp[1]] = kvp[2] }
    print "# GENERATED by deploy/edge/deploy.sh from wrangler.toml: do not edit, re-run the script."
    print "# Differences from wrangler.toml: main relative to this folder, the real KV namespace ids,"
    print "# and the custom-domain route (EDGE_DOMAIN) when one is set."
    table = ""
  }
  /^[[:space:]]*\[/ { table = $0; gsub(/[[:space:]]/, "", table); binding = "" }
  table == "" && /^[[:space:]]*main[[:space:]]*=/ {
    print "main = \"" main_rel "\""
    # A custom domain: the Cache API (per-location result cache) does not run on *.workers.dev.
    if (domain != "") print "routes = [{ pattern = \"" domain "\", custom_domain = true }]"
    next
  }
  table == "[[kv_namespaces]]" && /^[[:space:]]*binding[[:space:]]*=/ {
    binding = $0; sub(/^[^"]*"/, "", binding); sub(/".*$/, "", binding)
  }
  table == "[[kv_namespaces]]" && /^[[:space:]]*id[[:space:]]*=/ && (binding in ids) {
    print "id = \"" ids[binding] "\""; next
  }
  { print }
' "$SRC_CONFIG" >"$tmp_config"
mv "$tmp_config" "$DEPLOY_CONFIG"

# ---- 4. secrets and deploy ------------------------------------------------------------
secrets_file=""
cleanup() { if [ -n "$secrets_file" ]; then rm -f "$secrets_file"; fi; }
trap cleanup EXIT
for name in ORIGIN_SECRET ADMIN_SECRET; do
  if [ -z "${!name:-}" ] && [ "$DRY_RUN" = 0 ] && [ -t 0 ]; then
    read -r -s -p "$name (empty: keep the deployed value): " value
    echo >&2
    printf -v "$name" '%s' "$value"
  fi
done
secret_names=()
for name in ORIGIN_SECRET ADMIN_SECRET; do
  if [ -n "${!name:-}" ]; then
    secret_names+=("$name")
  else
    say "$name not given: the value already deployed (if any) is kept"
  fi
done
if [ "${#secret_names[@]}" -gt 0 ]; then
  secrets_file="$(umask 077 && mktemp "${TMPDIR:-/tmp}/imagereward-secrets.XXXXXX")"
  # JSON (values escaped by node); read from the environment, never from argv.
  ORIGIN_SECRET="${ORIGIN_SECRET:-}" ADMIN_SECRET="${ADMIN_SECRET:-}" node -e '
    const out = {};
    for (const k of process.argv.slice(1)) out[k] = process.env[k];
    process.stdout.write(JSON.stringify(out));
  ' "${secret_names[@]}" >"$secrets_file"
  say "secrets ${secret_names[*]} go up with the deployment (from $secrets_file, removed on exit)"
fi

deploy_args=(deploy --config "$DEPLOY_CONFIG")
if [ -n "$ORIGINS" ]; then deploy_args+=(--var "ORIGINS:$ORIGINS"); fi
if [ -n "$secrets_file" ]; then deploy_args+=(--secrets-file "$secrets_file"); fi
if [ "$DRY_RUN" = 1 ]; then
  outdir="${DRY_RUN_OUTDIR:-}"
  if [ -z "$outdir" ]; then
    outdir="$(mktemp -d "${TMPDIR:-/tmp}/imagereward-edge-dry-run.XXXXXX")"
  fi
  deploy_args+=(--dry-run --outdir "$outdir")
fi
wrangler "${deploy_args[@]}"

# ---- next steps -----------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ]; then
  say "dry run done: nothing was created or deployed; config at $DEPLOY_CONFIG, bundle in $outdir"
  exit 0
fi
edge_url="${EDGE_DOMAIN:+https://$EDGE_DOMAIN}"
cat >&2 <<NEXT

deploy.sh: deployed $WORKER_NAME. Next steps:
  1. Check the edge sees its origins:
       curl -s ${edge_url:-https://$WORKER_NAME.<your-subdomain>.workers.dev}/readyz
  2. Create the first API key (printed once; the edge stores only its sha256):
       IMAGEREWARD_EDGE_URL=${edge_url:-https://$WORKER_NAME.<your-subdomain>.workers.dev} \\
       IMAGEREWARD_ADMIN_SECRET=<ADMIN_SECRET> npx imagereward keys create --tenant <tenant> --tier standard
  3. Score through it: see README.md ("Edge") and docs/deploy.md.
  Re-running this script is safe: existing namespaces, queues and the bucket are reused.
NEXT
