"""An SSH target that answers what OpenSSH's sshd never would: for hostile-input tests.

Built on asyncssh, in a thread of the test process, on a loopback port. An
exec request's command says what to do:

* ``exit-status N`` -- print ``status N`` and exit with status N (any u32);
* ``exit-signal NAME`` -- end with that signal name, whatever bytes it holds;
* anything else -- print the command back and exit 0.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import asyncssh
from asyncssh.packet import UInt32

from sshtrail.broker import free_port
from tests.support.sshd import keygen


class _Session(asyncssh.SSHServerSession[bytes]):
    def __init__(self) -> None:
        self._chan: asyncssh.SSHServerChannel[bytes]
        self._command = ""

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(self, *_args: object) -> bool:
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def session_started(self) -> None:
        command = self._command
        if command.startswith("exit-status "):
            status = int(command.split()[1])
            self._chan.write(f"status {status}\n".encode())
            # asyncssh's exit() sends only the low 8 bits; the protocol field is 32.
            self._chan._send_request(b"exit-status", UInt32(status))
            self._chan.close()
        elif command.startswith("exit-signal "):
            self._chan.exit_with_signal(command[len("exit-signal ") :], False, "odd", "")
        else:
            self._chan.write(command.encode(errors="surrogateescape") + b"\n")
            self._chan.exit(0)


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def session_requested(self) -> _Session:
        return _Session()


class OddTarget:
    """Listens on 127.0.0.1:``port``, lets in ``client_key``; a context manager."""

    def __init__(self, workdir: Path, client_public_key: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(workdir / "odd_host_ed25519", "odd target")
        self._authorized = client_public_key
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncssh.SSHAcceptor | None = None

    def __enter__(self) -> OddTarget:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the odd target did not start")
        return self

    def __exit__(self, *_: object) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    @property
    def host_public_line(self) -> str:
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncssh.create_server(
                _Server,
                "127.0.0.1",
                self.port,
                server_host_keys=[str(self.host_key)],
                authorized_client_keys=str(self._authorized),
                encoding=None,
            )

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
