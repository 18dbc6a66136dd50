"""monosweep's sweep platform (spec -> grid -> Ray Tune -> ledger -> tracking -> reports).

For now it holds the ``monosweep`` command; the sweep layers land on top of :mod:`methods`.
"""
