"""The ``sshtrail`` command line: one module per command group."""
