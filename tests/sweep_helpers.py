"""The tiny base of a sweep file, shared by the sweep and Ray-cluster tests."""

import textwrap

TINY = textwrap.dedent("""\
    [base.model]
    name = "tiny-random"
    [base.federation]
    num_clients = 2
    rounds = 1
    local_steps = 1
    [base.data]
    train_size = 64
    test_size = 8
    [base.grpo]
    per_device_train_batch_size = 8
    """)
