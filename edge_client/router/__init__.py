"""CITER's learned router: an MLP over the student's final hidden state that scores, at each
position, how likely the student's own next token goes wrong, so the teacher writes there.

    relay-edge router collect --pair qwen2.5-coder --dataset train.jsonl --out DIR
    relay-edge router train DIR --out router.npz
    relay-edge ask "..." --pair qwen2.5-coder --policy router --threshold 0.3

references.py   the teacher's own greedy answers to training items, kept where right
forced.py       teacher-forced passes of both models over prompt + reference: the positions
positions.py    one compact file of positions per item (float16 hidden states)
labels.py       which positions the teacher should write (CITER's rule)
collect.py      the collection, resumable item by item
training.py     the MLP, trained with torch on CPU (the `router-train` extra)
metrics.py      AUC and calibration, numpy only
model.py        the router file (weights + metadata) and its numpy scoring: all inference needs
bundled.py      where the routers shipped with the package are (shipped/, one per student)

The policy that uses a router is `edge_client.policies.router`. Nothing here is imported by
the relay loop except `model` (numpy only).
"""
