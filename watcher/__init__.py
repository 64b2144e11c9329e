"""watcher: a scheduled news-watch scraper that tells you which facts changed, with the evidence."""

__version__ = "0.1.0"
