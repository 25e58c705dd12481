"""The exception types the command line turns into a single line: bad input (exit 2) and a failing device (exit 1)."""


MAX_LINE = 400  # characters of an error line: a message listing 1,000 labels is cut, with the count said


def capped(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line, at most ``limit`` characters: a longer one ends in ``... (N more characters)``."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(3):  # the tail's length depends on the count it states
        tail = f" ... ({len(text) - keep} more characters)"
        keep = limit - len(tail)
    return text[:keep] + f" ... ({len(text) - keep} more characters)"


def first_line(err: BaseException, with_type: bool = False) -> str:
    """The first non-empty line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    if with_type:
        return f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line or type(err).__name__


class UsageError(ValueError):
    """Bad input from the user (a setting, a file, a model name). ``str(err)`` is one line meant for the user."""


class DeviceError(RuntimeError):
    """A device runtime call failed (CUDA, TensorRT) on input that was fine. ``str(err)`` names the call and the
    runtime's own error; the command line prints it as one line and exits 1."""
