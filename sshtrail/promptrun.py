"""The rule of the ``uncertain-prompt`` flag: commands read, one after another, on
lines that showed no prompt at all (docs/recording.md, "Flags").

The terminal reader (:mod:`sshtrail.terminal`) tells :class:`PromptRun` of each
command it reads -- sure of its prompt, or not, and whether the line showed no
prompt at all -- and of each line the shell drew with a prompt seen before but no
Enter. Keys typed ahead while a command runs give the same prompt-less lines as an
empty PS1 (the terminal echoes them before the shell reads them), but then the shell
draws its prompt again with each of them: that explains the run, which starts over.
An empty or output-looking PS1 never draws a known prompt, so its commands run on.
"""

from __future__ import annotations

#: A session is flagged when this many commands in a row showed no prompt.
MIN_RUN = 3


class PromptRun:
    """How many commands in a row were read on lines with no prompt, and the longest
    such run the shell's own prompt did not explain."""

    def __init__(self, flagged: bool = False) -> None:
        #: The current run: commands without a prompt since the last sure one.
        self.run = 0
        #: The longest finished run (``MIN_RUN`` when taken over already flagged).
        self.longest = MIN_RUN if flagged else 0

    def command(self, certain: bool, promptless: bool) -> None:
        """A command was read: sure of its prompt, or on a line showing none at all."""
        if promptless:
            self.run += 1
        elif certain:
            self.longest = max(self.longest, self.run)
            self.run = 0

    def prompt_drawn(self) -> None:
        """The shell drew a prompt seen before on a line no Enter ended: it reads keys
        typed ahead, so the commands without a prompt so far were those keys."""
        self.run = 0

    @property
    def flagged(self) -> bool:
        """Whether the session is ``uncertain-prompt``, from what was read so far."""
        return max(self.longest, self.run) >= MIN_RUN
