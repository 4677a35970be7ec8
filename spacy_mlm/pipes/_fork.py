"""Keep torch usable in processes forked after it ran (spaCy's `nlp.pipe(n_process=...)`).

On Linux spaCy starts its `n_process` workers with fork. A process forked after torch ran
a parallel (OpenMP) region inherits a thread pool whose threads do not exist in the child:
the child's first parallel op (e.g. LayerNorm in the transformer) then waits forever. Like
torch's own DataLoader workers, forked children run torch single-threaded, which also avoids
n_process x n_threads oversubscription.
"""

import os

_registered = False


def _single_thread_torch_in_child() -> None:
    import torch

    torch.set_num_threads(1)


def register_fork_handler() -> None:
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_single_thread_torch_in_child)
        _registered = True
