"""Session bytes made safe to show on an auditor's terminal: drawn, never obeyed beyond that.

``replay`` and ``watch`` write what the operator's terminal showed to the
auditor's terminal -- that is what they are for -- but a recorded session
can hold sequences that make a terminal *answer* (cursor position and device
attribute queries: the answer arrives as typed input, in the auditor's
shell), set the clipboard (OSC 52), retitle the window, reprogram keys or
switch keyboard and mouse modes that outlive the replay. :class:`TerminalFilter`
passes everything that draws the screen and drops or undoes the rest:

* dropped: every query and report request (DSR, DA1/2/3, DECRQSS, DECRQM,
  XTVERSION, XTGETTCAP, window reports and manipulation, ENQ, DECID), OSC
  52 and every OSC that is not a colour setting or a hyperlink (titles too,
  unless asked for), DCS strings other than sixel graphics (user-defined
  keys, requests), APC/PM/SOS strings, mouse, focus, bracketed-paste,
  cursor-key and keypad modes, keyboard-protocol changes, and C1 controls
  sent as UTF-8;
* kept and undone at the end (:meth:`finish`): the alternate screen, cursor
  visibility, auto-wrap, origin and insert modes, scroll regions, colour
  palette changes, character sets and attributes.

The parser follows ECMA-48 and keeps its state between :meth:`feed` calls,
so a sequence split between two outputs is judged whole. A string sequence
longer than :data:`MAX_STRING` is dropped without being buffered.
"""

from __future__ import annotations

import re
from typing import Final

ESC: Final = 0x1B
BEL: Final = 0x07
#: OSC/DCS strings longer than this are dropped (and not held in memory).
MAX_STRING: Final = 64 << 10

#: DEC private modes that change what the terminal *sends*: never passed.
_INPUT_MODES: Final = frozenset(
    {1, 9, 66, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1015, 1016, 2004}
)
#: DEC private modes passed, with the sequence that undoes them.
_RESTORED_MODES: Final = {
    25: b"\x1b[?25h",
    7: b"\x1b[?7h",
    6: b"\x1b[?6l",
    5: b"\x1b[?5l",
    2026: b"\x1b[?2026l",
    47: b"\x1b[?47l",
    1047: b"\x1b[?1047l",
    1049: b"\x1b[?1049l",
}
#: OSC numbers passed: colour settings (undone at the end) and hyperlinks.
_COLOUR_OSC: Final = {4: b"104", 10: b"110", 11: b"111", 12: b"112", 17: b"117", 19: b"119"}
_PASSED_OSC: Final = frozenset({8, 104, 110, 111, 112, 117, 119})
_TITLE_OSC: Final = frozenset({0, 1, 2})
_C1_AS_UTF8: Final = re.compile(rb"\xc2[\x80-\x9f]")

# Parser states.
_GROUND, _ESC, _CSI, _STRING, _STRING_ESC, _SKIP, _SKIP_ESC = range(7)


class TerminalFilter:
    """A streaming filter over one session's output; see the module's text."""

    def __init__(self, titles: bool = False) -> None:
        self._titles = titles
        self._state = _GROUND
        self._sequence = bytearray()  # the escape sequence being read
        self._string_kind = 0  # b"]", b"P", b"_" ... of the string being read
        self._undo: dict[bytes, bytes] = {}  # what restores each thing kept
        self._pending_utf8 = b""  # a 0xC2 at the end of a feed

    def feed(self, data: bytes) -> bytes:
        """The safe form of ``data`` (which may end inside a sequence)."""
        if self._pending_utf8:
            data, self._pending_utf8 = self._pending_utf8 + data, b""
        if data.endswith(b"\xc2"):
            data, self._pending_utf8 = data[:-1], b"\xc2"
        data = _C1_AS_UTF8.sub(b"", data)
        out = bytearray()
        position = 0
        size = len(data)
        while position < size:
            if self._state == _GROUND:
                # Plain text is passed in runs, at C speed.
                stop = _next_special(data, position)
                out += data[position:stop]
                position = stop
                if position >= size:
                    break
                byte = data[position]
                position += 1
                if byte == ESC:
                    self._state, self._sequence = _ESC, bytearray(b"\x1b")
                elif byte == 0x0E:  # SO: another character set, undone at the end
                    self._undo[b"shift"] = b"\x0f"
                    out.append(byte)
                # 0x05 ENQ makes a terminal send its answerback: dropped.
                continue
            byte = data[position]
            position += 1
            out += self._step(byte)
        return bytes(out)

    def finish(self) -> bytes:
        """What undoes every lasting change the session made (nothing if it made none)."""
        self._state, self._sequence = _GROUND, bytearray()
        undo = b"".join(self._undo[key] for key in sorted(self._undo))
        self._undo.clear()
        return undo

    # -- the state machine -----------------------------------------------------------

    def _step(self, byte: int) -> bytes:
        state = self._state
        if state == _ESC:
            return self._after_escape(byte)
        if state == _CSI:
            if byte == ESC:  # cancelled by a new sequence
                self._state, self._sequence = _ESC, bytearray(b"\x1b")
                return b""
            self._sequence.append(byte)
            if 0x40 <= byte <= 0x7E:
                self._state = _GROUND
                return self._csi(bytes(self._sequence))
            if len(self._sequence) > 256:  # nonsense: drop it
                self._state = _SKIP
            return b""
        if state in (_STRING, _SKIP):
            if byte == BEL and self._string_kind == ord("]"):
                return self._end_string()
            if byte == ESC:
                self._state = _STRING_ESC if state == _STRING else _SKIP_ESC
                return b""
            if state == _STRING:
                self._sequence.append(byte)
                if len(self._sequence) > MAX_STRING:
                    self._state, self._sequence = _SKIP, bytearray()
            return b""
        # _STRING_ESC / _SKIP_ESC: "\x1b\\" ends the string. An ESC followed by anything
        # else starts a new sequence and abandons the string, which is not shown.
        if byte == ord("\\"):
            if state == _STRING_ESC:
                return self._end_string()
            self._state, self._sequence = _GROUND, bytearray()
            return b""
        self._state, self._sequence = _ESC, bytearray(b"\x1b")
        return self._after_escape(byte)

    def _after_escape(self, byte: int) -> bytes:
        self._sequence.append(byte)
        if byte == ord("["):
            self._state = _CSI
            return b""
        if byte in (ord("]"), ord("P"), ord("_"), ord("^"), ord("X")):
            self._state, self._string_kind = _STRING, byte
            return b""
        if 0x20 <= byte <= 0x2F:  # an intermediate: ESC ( 0, ESC # 8 ... wait for the final
            if len(self._sequence) > 4:
                self._state = _GROUND
            return b""
        self._state = _GROUND
        sequence = bytes(self._sequence)
        if byte in (ord("="), ord("Z")):  # keypad application mode; DECID (an answer)
            return b""
        if sequence[1:2] in (b"(", b")", b"*", b"+") and sequence[-1:] != b"B":
            self._undo[b"charset" + sequence[1:2]] = b"\x1b" + sequence[1:2] + b"B"
        return sequence

    def _csi(self, sequence: bytes) -> bytes:
        body, final = sequence[2:-1], sequence[-1:]
        prefix = body[:1] if body[:1] in (b"?", b">", b"=", b"<") else b""
        intermediates = bytes(b for b in body if 0x20 <= b <= 0x2F)
        parameters = body[len(prefix) : len(body) - len(intermediates)]
        if _dropped(prefix, intermediates, final):
            return b""
        if final in (b"h", b"l") and prefix == b"?":
            return self._private_modes(parameters, final)
        if final == b"h" and not prefix:
            for mode in parameters.split(b";"):
                if mode in (b"4", b"20"):
                    self._undo[b"ansi" + mode] = b"\x1b[" + mode + b"l"
        elif final == b"r" and not prefix:
            self._undo[b"region"] = b"\x1b[r"
        elif final == b"m" and not prefix:
            self._undo[b"\x00attributes"] = b"\x1b[0m"  # sorted first: before the rest
        return sequence

    def _private_modes(self, parameters: bytes, final: bytes) -> bytes:
        kept = []
        for text in parameters.split(b";"):
            try:
                mode = int(text or b"0")
            except ValueError:
                continue
            if mode in _INPUT_MODES:
                continue
            kept.append(text)
            if final == b"h" and mode in _RESTORED_MODES:
                self._undo[b"mode%d" % mode] = _RESTORED_MODES[mode]
            elif final == b"l" and mode == 25:
                self._undo[b"mode25"] = _RESTORED_MODES[25]
        return b"\x1b[?" + b";".join(kept) + final if kept else b""

    def _end_string(self) -> bytes:
        kind, sequence = self._string_kind, bytes(self._sequence)
        self._state, self._sequence = _GROUND, bytearray()
        if kind == ord("]"):
            return self._osc(sequence[2:])
        if kind == ord("P") and _is_sixel(sequence[2:]):
            return sequence + b"\x1b\\"
        return b""

    def _osc(self, body: bytes) -> bytes:
        number_text, _, text = body.partition(b";")
        try:
            number = int(number_text)
        except ValueError:
            return b""
        if number in _TITLE_OSC:
            return b"\x1b]" + body + b"\x07" if self._titles else b""
        if number in _COLOUR_OSC:
            if b"?" in text:  # a colour query: the terminal would answer
                return b""
            self._undo[b"osc%d" % number] = b"\x1b]" + _COLOUR_OSC[number] + b"\x07"
            return b"\x1b]" + body + b"\x07"
        if number in _PASSED_OSC:
            return b"\x1b]" + body + b"\x07"
        return b""


def _dropped(prefix: bytes, intermediates: bytes, final: bytes) -> bool:
    """Whether a CSI sequence makes the terminal answer, or changes what it sends."""
    if final in (b"n", b"c", b"t", b"x"):  # reports, identification, window operations
        return True
    if final == b"q":  # XTVERSION (> q); DECSCUSR (SP q) and DECSCA (" q) draw
        return prefix == b">"
    if final == b"p":  # DECRQM
        return intermediates == b"$"
    if final == b"u" or (final == b"S" and prefix == b"?"):  # keyboard protocol; XTSMGRAPHICS
        return bool(prefix)
    return final == b"m" and prefix in (b">", b"?")  # modifyOtherKeys and its query


def _next_special(data: bytes, start: int) -> int:
    """Where the next ESC, SO or ENQ is (or the end): everything before is plain."""
    found = len(data)
    for special in (b"\x1b", b"\x0e", b"\x05"):
        at = data.find(special, start, found)
        if at >= 0:
            found = at
    return found


def _is_sixel(body: bytes) -> bool:
    """A DCS string that is sixel graphics: parameters, then ``q`` and no intermediate."""
    match = re.match(rb"[0-9;]*q", body)
    return match is not None
