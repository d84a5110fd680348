"""The student: a small model on the device that writes the answer (StudentEngine)."""
