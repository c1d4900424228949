"""Reverse Personalization's models: an SDXL folder with an identity adapter, and deterministic DPM-Solver++ inversion."""
