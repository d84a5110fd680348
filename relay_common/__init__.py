"""Runtime pieces the edge and the teacher share: GGUF loading, tokenizer fingerprints, sampling.

Kept apart from both so the edge ships without the teacher's code and neither copies the other.
"""
