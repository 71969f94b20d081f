"""Data sets: importers for public DR data sets, inspection, previews, merging and pseudo-labelling."""
