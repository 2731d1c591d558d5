"""Error types the command line turns into one-line messages."""


class InputError(ValueError):
    """Bad user input: a missing, unreadable or unsupported file or folder.

    The message is one line and names the offending path first, e.g. ``"scan/: no DICOM files found"``.
    The CLI prints it and exits with status 2; nothing is written.
    """
