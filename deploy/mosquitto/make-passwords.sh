#!/usr/bin/env bash
# Write deploy/mosquitto/passwd (hashed, for Mosquitto's password_file) from environment variables,
# falling back to the repository's .env. The file holds secrets' hashes: it is git-ignored, never commit it.
#
#   MQTT_STORE_SERVER_PASSWORD   user store-server   (required)
#   MQTT_EDGE_SIM_PASSWORD       user edge-sim       (required)
#   MQTT_SHELF_G1_PASSWORD ... MQTT_SHELF_G5_PASSWORD, MQTT_GATE_IN_PASSWORD, MQTT_GATE_OUT_PASSWORD,
#   MQTT_CAM_CEILING_PASSWORD    one user per real edge node (optional: a user without one is skipped)
#
# Usage: deploy/mosquitto/make-passwords.sh [OUTPUT]   (default: deploy/mosquitto/passwd)
# Needs mosquitto_passwd (Debian: apt-get install mosquitto) or Docker (runs it in eclipse-mosquitto:2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/passwd}"
env_file="${WALKOUT_ENV_FILE:-$root/.env}"

REQUIRED_USERS=(store-server edge-sim)
OPTIONAL_USERS=(shelf-g1 shelf-g2 shelf-g3 shelf-g4 shelf-g5 gate-in gate-out cam-ceiling)

# Load .env for variables the environment does not already set (the environment wins).
if [ -f "$env_file" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%$'\r'}"
        case "$line" in ''|'#'*) continue ;; esac
        key="${line%%=*}"
        value="${line#*=}"
        key="${key#export }"
        key="${key//[[:space:]]/}"
        [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        # Strip one pair of surrounding quotes.
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
        if [ -z "${!key+x}" ]; then export "$key=$value"; fi
    done < "$env_file"
fi

var_of() {  # store-server -> MQTT_STORE_SERVER_PASSWORD
    local upper
    upper="$(echo "$1" | tr '[:lower:]-' '[:upper:]_')"
    echo "MQTT_${upper}_PASSWORD"
}

if command -v mosquitto_passwd >/dev/null 2>&1; then
    passwd_cmd() { mosquitto_passwd "$@"; }
    workdir="$(mktemp -d)"
elif command -v docker >/dev/null 2>&1; then
    workdir="$(mktemp -d)"
    passwd_cmd() {  # paths below are inside $workdir, mounted at /work
        local args=() a
        for a in "$@"; do args+=("${a/#$workdir//work}"); done
        docker run --rm -u "$(id -u):$(id -g)" -v "$workdir:/work" eclipse-mosquitto:2 mosquitto_passwd "${args[@]}"
    }
else
    echo "make-passwords: need mosquitto_passwd (apt-get install mosquitto) or docker" >&2
    exit 1
fi
trap 'rm -rf "$workdir"' EXIT
tmp="$workdir/passwd"
: > "$tmp"

count=0
for user in "${REQUIRED_USERS[@]}" "${OPTIONAL_USERS[@]}"; do
    var="$(var_of "$user")"
    password="${!var:-}"
    if [ -z "$password" ]; then
        if [[ " ${REQUIRED_USERS[*]} " == *" $user "* ]]; then
            echo "make-passwords: $var is not set (environment or $env_file); copy .env.example to .env" >&2
            exit 1
        fi
        echo "make-passwords: skipping $user ($var not set)"
        continue
    fi
    case "$password" in
        change-me*) echo "make-passwords: warning: $var still holds the .env.example placeholder" >&2 ;;
    esac
    passwd_cmd -b "$tmp" "$user" "$password"
    echo "make-passwords: added $user"
    count=$((count + 1))
done

mkdir -p "$(dirname "$out")"
install -m 0644 "$tmp" "$out"
# The broker runs as uid 1883 in eclipse-mosquitto; when we can, give it the file and close it to others.
if [ "$(id -u)" -eq 0 ]; then
    chown 1883:1883 "$out" && chmod 0600 "$out"
fi
echo "make-passwords: wrote $count user(s) to $out"
