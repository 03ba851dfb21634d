"""Benchmarks of the candleflow pipeline on a private moto server (``candleflow bench``)."""
