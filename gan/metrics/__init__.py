"""Offline sample quality: the shipped classifiers, their features, FID/KID/precision/recall/
coverage, optional Inception FID, and the metrics callback."""
