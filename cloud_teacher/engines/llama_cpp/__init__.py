"""The llama.cpp engine (`engine.create_engine`): one context, one sequence per session, one
batched `llama_decode` per step.

    engine.py         the Engine: requests in, span events out
    step_loop.py      the worker thread: admit, step, sample, emit
    scheduler.py      what one step evaluates (pure bookkeeping)
    sequence_pool.py  which sequence holds which session's KV prefix (pure bookkeeping)
    span_job.py       one span in progress
    batch_runner.py   the only module that calls llama.cpp's decoding API
"""
