"""Errors a user can act on. Each message says what went wrong and what to do."""


class CiteError(Exception):
    """Base of every error the CLI and UI show as a one-line message instead of a traceback."""


class IndexMissing(CiteError):
    pass


class IndexIncompatible(CiteError):
    pass


class IndexCorrupt(CiteError):
    pass


class IndexBusy(CiteError):
    pass


class BadQuestion(CiteError):
    pass


class DocumentError(CiteError):
    pass
