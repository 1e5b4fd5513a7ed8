"""Kafka for both halves: client settings, the ports sshtrail uses, their librdkafka adapters.

``confluent_kafka`` is imported by :mod:`sshtrail.kafka.adapters` and
:mod:`sshtrail.kafka.admin` only, where its exceptions are translated into
:class:`~sshtrail.errors.BrokerError` once; code elsewhere depends on the
protocols in :mod:`sshtrail.kafka.ports`. Importing this package (or the
ports) does not import librdkafka.
"""

from __future__ import annotations

from sshtrail.kafka.config import LARGE_FETCH, QUIET, client_config, murmur2, partition_for

__all__ = ["LARGE_FETCH", "QUIET", "client_config", "murmur2", "partition_for"]
