"""Moved to :mod:`wmilab.hresult`, the one catalogue of status codes; this name stays for
code written against it and will be removed."""

from wmilab.hresult import *  # noqa: F403
from wmilab.hresult import ALL, BY_CODE, HResult, from_win32, lookup, parse  # noqa: F401
