"""Unit tests of the benchmark suite (benches/renewd_bench): offline, standard
library only, a few seconds. From the repository's root:

    python3 -m unittest discover -s benches/tests -t benches
"""
