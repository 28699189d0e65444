"""The chat service: answers questions over a collection, with citations."""
