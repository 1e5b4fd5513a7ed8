"""What migrations need of sshtrail's code, copied as it was when they were written.

A migration must keep doing what it did, whatever the live code becomes, so
it imports from here, never from ``sshtrail``.
"""
