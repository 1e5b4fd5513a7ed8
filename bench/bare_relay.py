"""The least an asyncssh relay can do: the baseline ``bench.gateway`` sets the gateway against.

One process, one event loop: an SSH server that lets anyone in and, for each
session channel, opens the same kind of channel (exec or shell) on a fixed
target and passes bytes both ways with flow control -- no policy, no
recording, no Kafka, no threads. Whatever the gateway spends beyond this
process per MB is the price of being a gateway; whatever it spends with
recording on beyond recording off is the price of the recording.

    python -m bench.bare_relay --port P --host-key KEY --target-port T \\
        --target-user U --target-key KEY [--ciphers aes128-gcm@openssh.com]

Prints ``ready`` on stdout once it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh

from sshtrail.broker import free_port
from tests.support.sshd import SshdTarget, keygen, ssh_argv


class _Upstream(asyncssh.SSHClientSession[bytes]):
    def __init__(self, down: _Downstream) -> None:
        self._down = down

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._down.chan.write(data, datatype)

    def eof_received(self) -> bool:
        self._down.chan.write_eof()
        return True

    def exit_status_received(self, status: int) -> None:
        self._down.chan.exit(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._down.chan.close()

    def pause_writing(self) -> None:
        self._down.chan.pause_reading()

    def resume_writing(self) -> None:
        self._down.chan.resume_reading()


class _Downstream(asyncssh.SSHServerSession[bytes]):
    def __init__(self, target: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
        self._target = target
        self.chan: asyncssh.SSHServerChannel[bytes]
        self._up: asyncssh.SSHClientChannel[bytes] | None = None
        self._early: list[bytes] = []
        self._term: tuple[str, tuple[int, int, int, int]] | None = None
        self._opening: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], _modes: object
    ) -> bool:
        self._term = (term_type, term_size)
        return True

    def shell_requested(self) -> bool:
        self._opening = asyncio.ensure_future(self._open(None))
        return True

    def exec_requested(self, command: str) -> bool:
        self._opening = asyncio.ensure_future(self._open(command))
        return True

    async def _open(self, command: str | None) -> None:
        term_type, term_size = self._term if self._term else (None, None)
        target = await self._target
        self._up, _ = await target.create_session(
            lambda: _Upstream(self),
            command,
            term_type=term_type,
            term_size=term_size,
            encoding=None,
        )
        for data in self._early:
            self._up.write(data)
        self._early.clear()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._up is None:
            self._early.append(data)
        else:
            self._up.write(data)

    def eof_received(self) -> bool:
        if self._up is not None:
            self._up.write_eof()
        return True

    def pause_writing(self) -> None:
        if self._up is not None:
            self._up.pause_reading()

    def resume_writing(self) -> None:
        if self._up is not None:
            self._up.resume_reading()


class _Server(asyncssh.SSHServer):
    """One client connection; its connection to the target is opened at its first session."""

    def __init__(self, args: argparse.Namespace, ciphers: list[str]) -> None:
        self._args = args
        self._ciphers = ciphers
        self._target: asyncio.Task[asyncssh.SSHClientConnection] | None = None

    def begin_auth(self, username: str) -> bool:
        return False  # anyone may enter: a benchmark baseline on loopback

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        if self._target is None:
            self._target = asyncio.ensure_future(self._connect())
        return _Downstream(self._target)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._target is not None and self._target.done() and not self._target.exception():
            self._target.result().close()

    async def _connect(self) -> asyncssh.SSHClientConnection:
        args = self._args
        return await asyncssh.connect(
            "127.0.0.1",
            args.target_port,
            username=args.target_user,
            client_keys=[args.target_key],
            known_hosts=None,
            config=None,
            agent_path=None,
            **({"encryption_algs": self._ciphers} if self._ciphers else {}),
        )


async def _serve(args: argparse.Namespace) -> None:
    ciphers = [name for name in args.ciphers.split(",") if name]
    listener = await asyncssh.create_server(
        lambda: _Server(args, ciphers),
        "127.0.0.1",
        args.port,
        server_host_keys=[args.host_key],
        encoding=None,
        line_editor=False,
        **({"encryption_algs": ciphers} if ciphers else {}),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    listener.close()


class BareRelayProcess:
    """This module run as a process in front of ``target``, for ``bench.gateway``."""

    def __init__(self, work: Path, target: SshdTarget, ciphers: str = "") -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._target = target
        host_key = keygen(work / "host_key", "bare-relay")
        public = (work / "host_key.pub").read_text().split()
        self._known_hosts = work / "known_hosts"
        self._known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bare_relay",
                f"--port={self.port}",
                f"--host-key={host_key}",
                f"--target-port={target.port}",
                f"--target-user={target.user}",
                f"--target-key={target.client_key}",
                f"--ciphers={ciphers}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare relay did not start")

    def ssh(self, command: str, options: list[str]) -> list[str]:
        return ssh_argv(
            "bench@127.0.0.1",
            self.port,
            self._target.client_key,
            self._known_hosts,
            command,
            options=options,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--target-user", required=True)
    parser.add_argument("--target-key", required=True)
    parser.add_argument("--ciphers", default="")
    asyncio.run(_serve(args=parser.parse_args()))


if __name__ == "__main__":
    main()
