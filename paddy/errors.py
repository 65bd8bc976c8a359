"""The one error type users see: a single line that names the fix, never a traceback."""


import errno

FIXES = {errno.ENOSPC: 'the disk is full: free some space', errno.EDQUOT: 'the disk quota is full: free some space',
         errno.EFBIG: 'the file outgrew a size limit (ulimit -f?) or the disk: free some space or lift the limit',
         errno.EIO: 'is the disk full, or a file size limit (ulimit -f) reached? free some space',
         errno.EACCES: 'paddy may not write there: check its permissions, or work in a folder of your own',
         errno.EPERM: 'paddy may not write there: check its permissions, or work in a folder of your own',
         errno.EROFS: 'that disk is read-only: work in a writable folder',
         errno.ENOTDIR: 'a file stands where a folder belongs: move it aside',
         errno.EEXIST: 'a file stands where a folder belongs: move it aside',
         errno.EISDIR: 'a folder stands where a file belongs: move it aside'}


class PaddyError(Exception):
    "Bad input or a missing prerequisite; the CLI prints each line of `str(self)` as one error and exits 2."


def check_hours(hours: float | None, example: str = '1'):
    "A time budget (`--hours`), where given, must be some time."
    if hours is not None and hours <= 0:
        raise PaddyError(f"--hours {hours:g}: give the time there is, e.g. --hours {example}")


def from_os_error(e: OSError) -> PaddyError:
    "An unexpected OSError (a full disk, a read-only folder) as one line that names the path and the fix."
    where = e.filename or e.filename2
    what = e.strerror or str(e) or type(e).__name__
    return PaddyError(f"{where}: {what}: {FIXES.get(e.errno, 'check that path and try again')}" if where else
                      f"{what}: {FIXES.get(e.errno, 'check the paths involved and try again')}")
