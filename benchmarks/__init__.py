"""The project's benchmarks: each prints one JSON line of ratios or percentiles measured in one
run (`python -m benchmarks.<name> --help`)."""
