"""`relay-edge`: front ends that render the relay loop's events (no relay logic here)."""
