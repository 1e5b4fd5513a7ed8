"""An ``ssh`` for ``sftp -S`` that slips one hand-built packet into the real client's stream.

Run as ``python sftpinject.py SSH-ARGS...`` (``sftp`` passes its ssh arguments):
it starts the real ``ssh`` with them and relays the SFTP packets both ways.
Once the server has answered the client's first CLOSE (a whole file is then
in the recording, answered), it sends, before the client's next request,
the packet whose bytes are hex in ``SFTPINJECT_PACKET`` (length prefix
included); a STATUS answering that packet's id (``SFTPINJECT_ID``) is kept
from the client, which would otherwise stop at a reply to a request it
never made.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from typing import IO

CLOSE, STATUS = 4, 101


def _packet(stream: IO[bytes]) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    body = stream.read(struct.unpack(">I", head)[0])
    return head + body


class _Relay:
    """Both directions; only the client-to-server thread writes to the server (a
    write from the other thread could wait on a full pipe while nothing drains it)."""

    def __init__(self, server: IO[bytes], injected: bytes, ident: int) -> None:
        self.server, self.injected, self.ident = server, injected, ident
        self.close_id: int | None = None  # the first CLOSE request's id
        self.answered = threading.Event()  # the server answered that CLOSE

    def to_server(self, client: IO[bytes]) -> None:
        sent = False
        while (packet := _packet(client)) is not None:
            if not sent and self.answered.is_set():
                self.server.write(self.injected)
                self.server.flush()
                sent = True
                # OpenSSH's sftp-server reads one message per wake-up and answers
                # nothing to an unknown one: the next request must come separately,
                # or it waits in the server's buffer for input that never comes.
                time.sleep(0.5)
            if packet[4] == CLOSE and self.close_id is None:
                self.close_id = _ident(packet)
            self.server.write(packet)
            self.server.flush()
        self.server.close()

    def to_client(self, source: IO[bytes], client: IO[bytes]) -> None:
        while (packet := _packet(source)) is not None:
            if packet[4] == STATUS and _ident(packet) == self.ident:
                continue
            client.write(packet)
            client.flush()
            if packet[4] == STATUS and _ident(packet) == self.close_id:
                self.answered.set()


def _ident(packet: bytes) -> int:
    return int(struct.unpack(">I", packet[5:9])[0])


def main() -> int:
    injected = bytes.fromhex(os.environ["SFTPINJECT_PACKET"])
    ident = int(os.environ["SFTPINJECT_ID"])
    ssh = subprocess.Popen(["ssh", *sys.argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert ssh.stdin is not None
    assert ssh.stdout is not None
    relay = _Relay(ssh.stdin, injected, ident)
    threading.Thread(target=relay.to_server, args=(sys.stdin.buffer,), daemon=True).start()
    relay.to_client(ssh.stdout, sys.stdout.buffer)
    return ssh.wait()


if __name__ == "__main__":
    sys.exit(main())
