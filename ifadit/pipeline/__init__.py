"""End-to-end anonymize and restore pipelines."""
