"""Anonymization backends behind one interface (classic baselines, iFADIT, diffusion)."""
