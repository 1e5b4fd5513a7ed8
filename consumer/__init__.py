"""The reading side of sshtrail: the consumer-group runner, store and index groups, lag.

Imports :mod:`sshtrail` for the wire format, settings and models; never :mod:`producer`.
"""
