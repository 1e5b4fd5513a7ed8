"""A demo SSH target for ``sshtrail up --demo``: a real login shell as the current user.

It runs shells and commands, and serves SFTP (``sftp``, and ``scp``, which
speaks SFTP) with OpenSSH's ``sftp-server`` when this machine has it.

It listens on loopback only and lets in exactly one key -- the one the demo
gateway configuration gives the gateway for it -- so a newcomer can try the
whole pipeline without an sshd of their own. Not for production use.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import struct
import termios
from pathlib import Path

import asyncssh

from producer.keys import host_key
from sshtrail.demo import sftp_server


class _Shell(asyncssh.SSHServerSession[bytes]):
    """Runs the user's shell (or the exec command) on a PTY when one is requested."""

    def __init__(self) -> None:
        self._chan: asyncssh.SSHServerChannel[bytes]
        self._pty: tuple[int, int] | None = None
        self._size = (80, 24)
        self._command: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._master = -1
        self._task: asyncio.Task[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._draining = False
        # What the client sends before the program runs (an SFTP client's first
        # packet, a command's input): kept for it, not lost.
        self._early: list[bytes] = []
        self._early_eof = False

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: object
    ) -> bool:
        self._pty = os.openpty()
        self._size = (term_size[0] or 80, term_size[1] or 24)
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        """SFTP, served by OpenSSH's own ``sftp-server`` (as sshd does); nothing else."""
        program = sftp_server() if subsystem == "sftp" else None
        if program is None:
            return False
        self._command = program
        return True

    def session_started(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        shell = pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
        argv = [shell, "-c", self._command] if self._command else [shell, "-l"]
        env = {**os.environ, "TERM": self._chan.get_terminal_type() or "dumb"}
        loop = asyncio.get_running_loop()
        if self._pty:
            self._master, slave = self._pty
            self._resize(*self._size)
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                cwd=Path.home(),
                start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
            os.close(slave)
            loop.add_reader(self._master, self._pump)
        else:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=Path.home(),
            )
            copies = [
                loop.create_task(self._copy(self._process.stdout, None)),
                loop.create_task(self._copy(self._process.stderr, asyncssh.EXTENDED_DATA_STDERR)),
            ]
        for data in self._early:
            self.data_received(data, None)
        self._early.clear()
        if self._early_eof:
            self.eof_received()
        status = await self._process.wait()
        if not self._pty:
            await asyncio.gather(*copies)
        if self._master >= 0:
            await asyncio.sleep(0.05)  # let the last output through
            loop.remove_reader(self._master)
            self._pump()
            os.close(self._master)
            self._master = -1
        self._chan.exit(status if status >= 0 else 128 - status)

    async def _copy(self, stream: asyncio.StreamReader | None, datatype: int | None) -> None:
        assert stream is not None
        while data := await stream.read(65536):
            await self._writable.wait()  # the client reads slower than the program writes
            self._chan.write(data, datatype)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _pump(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:
            data = b""
        if data:
            self._chan.write(data)

    def _resize(self, cols: int, rows: int) -> None:
        if self._master >= 0:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._resize(width, height)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._process is None:
            self._early.append(data)
        elif self._master >= 0:
            os.write(self._master, data)
        elif self._process is not None and self._process.stdin is not None:
            self._process.stdin.write(data)
            if not self._draining and self._process.stdin.transport.get_write_buffer_size() > (
                1 << 20
            ):  # the program reads slower than the client sends: hold the client
                self._draining = True
                self._chan.pause_reading()
                asyncio.get_running_loop().create_task(self._drain(self._process.stdin))

    async def _drain(self, stdin: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await stdin.drain()
        self._draining = False
        self._chan.resume_reading()

    def eof_received(self) -> bool:
        if self._process is None:
            self._early_eof = True
        elif self._process.stdin is not None:
            self._process.stdin.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()


class _Server(asyncssh.SSHServer):
    def session_requested(self) -> _Shell:
        return _Shell()


async def serve(port: int, key_path: Path, authorized: Path) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled."""
    server = await asyncssh.create_server(
        _Server,
        "127.0.0.1",
        port,
        server_host_keys=[host_key(key_path)],
        authorized_client_keys=str(authorized),
        encoding=None,
        line_editor=False,
        agent_forwarding=False,
        x11_forwarding=False,
    )
    async with server:
        await server.wait_closed()
