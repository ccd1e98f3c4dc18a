"""wmilab: remote WMI through Windows Firewall and DCOM, made executable, testable and fixable."""

__version__ = "0.1.0"   # the only place the version is written; pyproject.toml reads it
