"""sshtrail: an SSH session-audit pipeline (shared code: wire format, settings, models, CLI).

Importing the package imports nothing else: every command pays only for what
it runs (docs/performance.md, "CLI start-up").
"""

__version__ = "0.1.0"
