"""Reports from a run's CSV exports: load -> compute -> plot.

``python -m reports PREFIX [PREFIX2 ...]``
"""
