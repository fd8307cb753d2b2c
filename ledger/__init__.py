"""The event ledger: typed events in one SQLite file, their projections, and the pure fold."""

from auto_label.ledger.fold import ImageState, fold
from auto_label.ledger.store import LEDGER_FILE, Ledger
from auto_label.ledger.writer import LedgerWriter

__all__ = ["LEDGER_FILE", "ImageState", "Ledger", "LedgerWriter", "fold"]
