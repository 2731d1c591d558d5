"""Error types the command line turns into one-line messages, and the OSErrors that count as bad input."""

import errno

#: ``OSError`` numbers of the place being written (disk full, quota, read-only, file too large): not bugs.
WRITE_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EFBIG) if e is not None
)
#: ... and of a place that cannot be used at all (permissions, name too long, a file where a folder should be).
PLACE_ERRNOS = WRITE_ERRNOS | {errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ENOTDIR}


class InputError(ValueError):
    """Bad user input: a missing, unreadable or unsupported file or folder.

    The message is one line and names the offending path first, e.g. ``"scan/: no DICOM files found"``.
    The CLI prints it and exits with status 2; nothing is written.
    """
