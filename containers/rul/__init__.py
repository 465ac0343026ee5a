"""Shared library of the container scripts: C-MAPSS data, features, models and metrics.

It ships inside each job's source directory next to the entry scripts, so it imports nothing from the
rest of the project.
"""
