"""The recording side of sshtrail: SSH gateway, recorder, publisher and spool.

Imports :mod:`sshtrail` for the wire format and settings; never :mod:`consumer`.
"""
