"""The Black Friday order pipeline of seed 002, built only on Streamboot's public API."""
