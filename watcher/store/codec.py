"""The snapshot content codec lives in `watcher.codec` (processing workers encode snapshots without importing
the store); re-exported here for the store's readers."""

from watcher.codec import decode_document, encode_document

__all__ = ["decode_document", "encode_document"]
