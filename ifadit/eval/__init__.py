"""Evaluation metrics, attacks and reports."""
