"""Real services for the tests: broker, PostgreSQL, OpenSSH sshd and client."""
