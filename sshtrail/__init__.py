"""sshtrail: an SSH session-audit pipeline (shared code: wire format, settings, models, CLI)."""

from sshtrail.chain import ChainWriter, Status, Verdict, verify_chain
from sshtrail.errors import (
    BrokerError,
    ConfigError,
    DatabaseError,
    InvalidError,
    RetryableError,
    SshtrailError,
    WireError,
)
from sshtrail.settings import Settings, load_settings
from sshtrail.wire import Chunk, decode_chunk, encode_chunk

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "ChainWriter",
    "Chunk",
    "ConfigError",
    "DatabaseError",
    "InvalidError",
    "RetryableError",
    "Settings",
    "SshtrailError",
    "Status",
    "Verdict",
    "WireError",
    "__version__",
    "decode_chunk",
    "encode_chunk",
    "load_settings",
    "verify_chain",
]
