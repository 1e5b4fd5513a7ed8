"""Reading the control topic's recent past, kept current: what the auditors' boards share.

Four-eyes reviews (:mod:`consumer.reviews`) and moderated sessions
(:mod:`consumer.moderation`) are told by messages on the control topic, signed by the
gateways (``control.gateway_keys`` and the gateway's own key) or by the control key. A
board starts at the first message of the look-back (found by time), reads to the log
ends at each look, and hands every message to its subclass's :meth:`ControlBoard._take`.
The web console keeps one board open and looks every few seconds; the CLI reads once.
Thread-safe; a broker error drops the reader, and the next look starts again.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sshtrail import control
from sshtrail.errors import BrokerError
from sshtrail.kafka.adapters import topic_reader
from sshtrail.kafka.ports import TopicReader
from sshtrail.kafka.readback import Stop, assign_since, read_to_ends
from sshtrail.settings import Settings
from sshtrail.verification import known_gateway_keys

#: At most this many messages are read in one look (the control topic is small).
MAX_MESSAGES = 200_000
#: A look that has not reached the log ends after this long fails.
READ_WITHIN_S = 30.0


class ControlBoard(abc.ABC):
    """The control topic since ``look_back_s`` ago, read to its ends at each look."""

    def __init__(self, settings: Settings, look_back_s: float, name: str) -> None:
        self._settings = settings
        self.look_back_s = look_back_s
        self._name = name
        self._topic = settings.control.topic
        #: The keys whose messages are the gateways' and the auditors' (control key).
        self.gateways = control.gateway_keys(settings, known_gateway_keys(settings))
        self.auditors = control.trusted_keys(settings)
        self._lock = threading.Lock()
        self._reader: TopicReader | None = None
        self._position: dict[int, int] = {}

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Read to the log ends, then hold the board's lock while the caller looks."""
        with self._lock:
            try:
                self._read_to_end()
            except BrokerError:
                self._drop_reader()
                raise
            yield

    def close(self) -> None:
        with self._lock:
            self._drop_reader()

    @abc.abstractmethod
    def _take(self, key: bytes, value: bytes | None) -> None:
        """One message of the topic, in the order of its partition."""

    @staticmethod
    def decoded(value: bytes | None, trusted: set[bytes], key: bytes) -> control.Message | None:
        """The message if it is signed by one of ``trusted`` for ``key``; None if not
        (not signed by whom it must be: not what it says it is)."""
        try:
            return control.decode(value, trusted, key)
        except control.ControlError:
            return None

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None

    def _connect(self) -> TopicReader:
        reader = topic_reader(self._settings, self._name, timeout=5.0)
        try:
            since_ms = int((time.time() - self.look_back_s) * 1000)
            self._position = assign_since(reader, self._topic, since_ms, self._position)
        except BrokerError:
            reader.close()
            raise
        return reader

    def _read_to_end(self) -> None:
        if self._reader is None:
            self._reader = self._connect()
        read = read_to_ends(
            self._reader,
            self._topic,
            self._position,
            lambda message: self._take(message.key() or b"", message.value()),
            within_s=READ_WITHIN_S,
            max_messages=MAX_MESSAGES,
        )
        if read.stop is Stop.TIME:
            raise BrokerError(
                f"{self._topic}: could not read the {self._name} within {READ_WITHIN_S:g} s"
            )
