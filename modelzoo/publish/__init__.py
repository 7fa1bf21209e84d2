"""Publishing zoos for others: reports, zoo cards, Croissant, archives, and importers of the
layouts other zoos use today (see docs/publishing.md)."""
