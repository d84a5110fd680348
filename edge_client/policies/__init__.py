"""When the student calls the teacher, and for how many tokens (DESIGN §4).

Each policy is one small class in its own module; `registry.build_policy` makes one by name.
"""
