#!/bin/sh
# One-shot `keys` service of the compose stack: create the demo's keys and its
# sshtrail.toml on the first run; later runs keep them. Production replaces the
# config volume's sshtrail.toml with its own operators and targets.
#   KEYS_DIR     where keys go (default /etc/sshtrail/keys)
#   CONFIG_FILE  the settings file to write (default /etc/sshtrail/sshtrail.toml)
#   TARGET_HOST  the demo target's address (default target)
set -eu
keys=${KEYS_DIR:-/etc/sshtrail/keys}
config=${CONFIG_FILE:-/etc/sshtrail/sshtrail.toml}
target=${TARGET_HOST:-target}

make_key() {
    if [ ! -f "$keys/$1" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$keys/$1"
    fi
}
make_key operator_ed25519 "sshtrail compose demo operator"
make_key gateway_to_target_ed25519 "sshtrail gateway to the demo target"
make_key target_host_ed25519 "sshtrail demo target host key"
# The gateway signs every chunk with it; the store, the index and the console take
# only chunks this key signed (control.gateway_keys), so it is made here, where they
# all read it, not in the gateway's own state.
make_key gateway_recording_ed25519 "sshtrail gateway recording key"
# The target needs to read its keys as root; the gateway (uid 10001) its own.
chmod 644 "$keys"/*.pub

if [ ! -f "$config" ]; then
    cat > "$config.new" <<TOML
# Written by compose/demo-keys.sh: one operator, one target (the demo sshd).
[[operators]]
name = "demo"
keys = ["$(cat "$keys/operator_ed25519.pub")"]
targets = ["demo"]

[[targets]]
name = "demo"
host = "$target"
port = 22
user = "demo"
key = "$keys/gateway_to_target_ed25519"
host_keys = ["$(cut -d' ' -f1,2 "$keys/target_host_ed25519.pub")"]

[gateway]
signing_key = "$keys/gateway_recording_ed25519"

[control]
gateway_keys = ["$(cut -d' ' -f1,2 "$keys/gateway_recording_ed25519.pub")"]
TOML
    mv "$config.new" "$config"
fi
# Fail this one-shot (and so the stack) on a config the gateway would refuse.
sshtrail --config "$config" config >/dev/null
echo "demo keys in $keys; settings in $config"
echo "operator key: docker-compose run --rm --entrypoint cat keys $keys/operator_ed25519"
