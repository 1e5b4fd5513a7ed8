#!/bin/sh
# Install the host key and the gateway's public key that the `keys` service made
# (in the config volume, mounted read-only at /etc/sshtrail) with the ownership
# sshd insists on, then run sshd in the foreground, logging to stderr.
set -eu
keys=/etc/sshtrail/keys
install -m 600 -o root -g root "$keys/target_host_ed25519" /etc/ssh/ssh_host_ed25519_key
install -d -m 700 -o demo -g demo /home/demo/.ssh
install -m 600 -o demo -g demo "$keys/gateway_to_target_ed25519.pub" /home/demo/.ssh/authorized_keys
exec /usr/sbin/sshd -D -e
