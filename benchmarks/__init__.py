"""Side-by-side benchmarks (never timed tests). `make bench` runs every module here."""
