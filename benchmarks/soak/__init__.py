"""The randomized soak of the teacher: scenarios drawn from a seed (scenarios.py, malformed.py)
run against a real `relay-teacher serve` (teacher.py) while the driver checks that the teacher
stays up and honest (driver.py). `python -m benchmarks.soak --help`."""
