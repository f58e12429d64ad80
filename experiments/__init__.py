"""Recorded experiments, too long for a chapter to run on every build.

``python -m experiments`` runs them and writes JSON under
``experiments/results/``; the chapters read that JSON and say it is a
recorded run, with its date and machine.
"""
