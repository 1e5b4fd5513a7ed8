"""What a session teaches its reader: the aliases it defines and the keys it binds, as
bash would apply them to the lines that come after."""

from __future__ import annotations

from sshtrail.shellmemory import MAX_BINDINGS, ShellMemory


def test_an_alias_defined_in_the_session_expands_the_first_word_of_each_command() -> None:
    shell = ShellMemory()
    assert shell.expand_aliases("ll /tmp") is None  # none defined yet
    shell.learn_aliases("alias ll='ls -l' gone=rm")
    assert shell.expand_aliases("ll /tmp; echo ll | gone -rf x") == "ls -l /tmp; echo ll | rm -rf x"
    assert shell.expand_aliases("echo 'll' ll") is None  # not a command's first word


def test_an_alias_ending_in_a_blank_expands_the_next_word_and_none_loops() -> None:
    shell = ShellMemory()
    shell.learn_aliases("alias sudo='sudo ' wipe='rm -rf' a=b b=a")
    assert shell.expand_aliases("sudo wipe /") == "sudo  rm -rf /"  # the value, then the rest
    assert shell.expand_aliases("a") is None  # a -> b -> a: each name once, as bash does


def test_unalias_forgets_and_the_aliases_kept_are_bounded() -> None:
    shell = ShellMemory()
    shell.learn_aliases("alias x=rm y=mv")
    shell.learn_aliases("unalias x")
    assert shell.aliases == {"y": "mv"}
    shell.learn_aliases("unalias -a")
    assert shell.aliases == {}
    shell.learn_aliases("alias " + " ".join(f"a{i}=ls" for i in range(MAX_BINDINGS + 10)))
    assert len(shell.aliases) == MAX_BINDINGS


def test_bind_x_keys_are_read_as_readline_writes_them() -> None:
    shell = ShellMemory()
    shell.learn_bindings("""bind -x '"\\C-t": rm -rf /tmp/x' '"\\ep": id'""")
    assert shell.bound == {b"\x14": "rm -rf /tmp/x", b"\x1bp": "id"}
    shell.learn_bindings("""bind -x '"\\q": nothing'""")  # an escape readline has not
    assert len(shell.bound) == 2


def test_an_alias_after_and_or_or_is_expanded_as_bash_does() -> None:
    """``true && wipe /`` runs ``rm -rf /``: the command after ``&&`` or ``||`` starts
    with a command word like any other (a reader that stopped at the second ``&``
    listed only ``wipe``, and the policy gate never saw ``rm``)."""
    shell = ShellMemory()
    shell.learn_aliases("alias wipe='rm -rf'")
    assert shell.expand_aliases("true && wipe /") == "true && rm -rf /"
    assert shell.expand_aliases("false || wipe /") == "false || rm -rf /"
    assert shell.expand_aliases("sleep 1 & wipe /") == "sleep 1 & rm -rf /"
