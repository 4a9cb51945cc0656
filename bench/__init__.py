"""`make bench`: checkout throughput and latency of the shop against its substrate's ceiling.

`python -m bench [--quick]`; see bench/README.md.
"""
