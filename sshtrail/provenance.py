"""Whether a chunk comes from a trusted gateway, judged as it arrives, before anything uses it.

Anyone who may produce to the sessions topic can publish a chunk with a live
session's next seq. Since wire format 4 every chunk is signed by its
gateway's recording key and names it, so the store, the index and the live
view each take a chunk only when its signature verifies under a trusted key
(:class:`Provenance`); anything else is refused -- kept as evidence by the
store, skipped by the others -- and the real chunk with that seq, arriving
later, is taken. Chunks of wire formats 1 to 3 (gateways from before) carry
no signature except on the end chunk: they are refused too, unless
``consumer.accept_unsigned_chunks`` is on, for the time an upgrade takes.

The trusted keys are ``control.gateway_keys`` and the public half of the
gateway key of these settings when it exists (one machine, as ``up``). With
none at all, a chunk is only checked against the key it names -- which keeps
out damaged chunks but not a forger with a key of its own -- and
:func:`provenance` says so in the log.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sshtrail.chain import chunk_signature_valid
from sshtrail.control import parse_keys
from sshtrail.keyfiles import load_ed25519_public, public_path
from sshtrail.settings import Settings
from sshtrail.verification import fingerprint
from sshtrail.wire import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Provenance:
    """The gateways whose chunks are taken; see the module docstring."""

    #: Raw Ed25519 public keys; empty: any key a chunk names (signature checked only).
    trusted: frozenset[bytes]
    #: Take chunks of wire formats 1 to 3 that carry no signature (during an upgrade).
    accept_unsigned: bool = False

    def refusal(self, chunk: Chunk) -> str | None:
        """Why ``chunk`` is not taken as its session's chunk; None when it is."""
        if chunk.signer is None:
            if self.accept_unsigned:
                return None
            return (
                f"unsigned chunk (wire format {chunk.version}) while "
                "consumer.accept_unsigned_chunks is off"
            )
        if not chunk_signature_valid(chunk):
            return "its signature does not verify"
        if self.trusted and chunk.signer not in self.trusted:
            return f"signed by {fingerprint(chunk.signer)}, not a trusted gateway key"
        return None

    def refusals(self, chunks: Sequence[Chunk]) -> list[str | None]:
        """:meth:`refusal` of each of ``chunks`` (in the order they were read), with one
        signature check per run of a session's chunks instead of one per chunk.

        A chunk taken vouches for the chunk before it in its chain: its signature
        covers its digest, which covers its ``prev``, the digest of everything the
        previous chunk says (its key included). So, read from the back, a chunk whose
        digest is the ``prev`` of a later chunk taken, under the same key, is taken
        without checking its own signature -- as surely as if it had been checked. A
        forgery cannot have that digest; it is checked, and refused, on its own.

        The digest does not cover the signature, though: a copy of a real chunk with
        its signature spoiled has the real chunk's digest. Such a copy says nothing
        new, but stored in the real chunk's place it would make a genuine session
        read as tampered. So a chunk whose session and seq come more than once in the
        batch is never vouched for: each copy is checked on its own.
        """
        reasons: list[str | None] = [None] * len(chunks)
        seen = Counter((chunk.session_id, chunk.seq) for chunk in chunks)
        vouched: set[tuple[bytes, bytes]] = set()  # (digest, key) of chunks vouched for
        for i in range(len(chunks) - 1, -1, -1):
            chunk = chunks[i]
            signer = chunk.signer
            alone = seen[chunk.session_id, chunk.seq] == 1
            if signer is None or not alone or (chunk.digest, signer) not in vouched:
                reasons[i] = self.refusal(chunk)
            if reasons[i] is None and signer is not None:
                vouched.add((chunk.prev, signer))
        return reasons


def recording_keys(settings: Settings) -> frozenset[bytes]:
    """``control.gateway_keys`` and the public half of this installation's gateway key."""
    keys = parse_keys(settings.control.gateway_keys, "control.gateway_keys")
    own = public_path(
        settings.state_file(settings.gateway.signing_key, "gateway/recording_ed25519_key")
    )
    if own.exists():
        keys.add(load_ed25519_public(own))
    return frozenset(keys)


def provenance(settings: Settings, who: str) -> Provenance:
    """The check ``who`` (``store``, ``index``, ``live view``...) applies to each chunk."""
    trusted = recording_keys(settings)
    accept_unsigned = settings.consumer.accept_unsigned_chunks
    if not trusted:
        log.warning(
            "%s: no trusted gateway key (control.gateway_keys is empty and this "
            "installation has no gateway key): chunks are checked only against the key "
            "they name, so a forged chunk signed by any key is taken",
            who,
        )
    if accept_unsigned:
        log.warning(
            "%s: consumer.accept_unsigned_chunks is on: chunks without a signature "
            "(wire format 1 to 3) are taken, forged ones among them",
            who,
        )
    return Provenance(trusted, accept_unsigned)
