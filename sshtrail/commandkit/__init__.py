"""What every ``sshtrail`` command is made of, whichever half runs it: argument types
and time specs, output formats, exit statuses, stop signals, the stores opened for
reading. The commands themselves are leaves (``sshtrail/cli``, ``producer/commands``,
``consumer/commands``) that nothing imports; this is what they share."""
